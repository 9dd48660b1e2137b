//! Who may read what: the scopes, the caller of a request and the rules of each route.
//!
//! A token's `sub` is an identity whose kind its scopes tell: [`USER`] (`sub` is the user
//! id), [`SELLER`] (the seller id), [`PARTNER`] (the partner id of catalog distribution
//! rights); [`ADMIN`] reads everything. A token may carry several scopes. Each route declares
//! its rule (`Access`, in the route table); the rules are in the crate documentation
//! ("Authorization"), and this module implements them. A refusal says what the route needs
//! and what the token may read, listed from the route table.
//!
//! With no [`Authenticator`](fleuve_service::auth::Authenticator) configured every route is
//! open and the `Authorization` header is not read.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use fleuve_service::auth::{challenge, Claims};
use fleuve_service::ApiError;

use crate::failure::Denied;
use crate::input::quoted;
use crate::state::AppState;
use crate::table::{Access, Declared, Table};

/// Scope of an end user: `sub` is the user id (also the buyer id of orders).
pub const USER: &str = "user";
/// Scope of a seller: `sub` is the seller id.
pub const SELLER: &str = "seller";
/// Scope of a distribution partner: `sub` is the partner id of catalog distribution rights.
pub const PARTNER: &str = "partner";
/// Scope of an operator: reads everything.
pub const ADMIN: &str = "admin";

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Authentication is off ([`crate::QueryConfig::auth`] is `None`): everything is open.
    Open,
    /// No `Authorization` header.
    Anonymous,
    /// A verified bearer token.
    Token(Claims),
}

/// The token is checked whenever one is sent, on every route: a bad token is a 401 even
/// where no token is needed (a client should learn that its token is wrong).
impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(auth) = &state.config.auth else {
            return Ok(Caller::Open);
        };
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Caller::Anonymous);
        }
        match auth.authenticate(&parts.headers) {
            Ok(claims) => {
                tracing::debug!(sub = %claims.sub, "authenticated");
                Ok(Caller::Token(claims))
            }
            // The challenge of an invalid token names no scope.
            Err(error) => Err(challenge(error, "")),
        }
    }
}

impl Declared {
    /// The route's access rule for `caller`, reading the data of the path's `id` (`what`
    /// names it in messages). For an [`Access::Parties`] route, this is the check before
    /// the row is read; [`Declared::allow_parties`] is the one after.
    pub(crate) fn allow(&self, caller: &Caller, id: &str, what: &str) -> Result<(), Denied> {
        match self.route.access {
            Access::Open => Ok(()),
            Access::User => owner(caller, USER, id, what, "user admin", self.table),
            Access::Seller => owner(caller, SELLER, id, what, "seller admin", self.table),
            Access::Parties { row } => accounts(caller, what, Some(row), self.table),
            Access::Accounts => accounts(caller, what, None, self.table),
        }
    }

    /// An [`Access::Parties`] route, once its row is read: [`ADMIN`], or a [`USER`] token
    /// of its buyer, or a [`SELLER`] token of its seller. (An absent row is a 404 for every
    /// caller [`Declared::allow`] lets through.)
    pub(crate) fn allow_parties(
        &self,
        caller: &Caller,
        buyer_id: &str,
        seller_id: &str,
        what: &str,
    ) -> Result<(), Denied> {
        let row = match self.route.access {
            Access::Parties { row } => row,
            _ => "row",
        };
        match caller {
            Caller::Open => Ok(()),
            Caller::Anonymous => Err(unauthenticated(what, &needs(Some(row)), ACCOUNT_SCOPES)),
            Caller::Token(c)
                if c.has_scope(ADMIN)
                    || (c.has_scope(USER) && c.sub == buyer_id)
                    || (c.has_scope(SELLER) && c.sub == seller_id) =>
            {
                Ok(())
            }
            Caller::Token(c) => Err(forbidden(
                c,
                what,
                &needs(Some(row)),
                ACCOUNT_SCOPES,
                self.table,
            )),
        }
    }
}

/// The challenge scopes of the routes any account may read.
const ACCOUNT_SCOPES: &str = "user seller admin";

/// What an [`Access::Parties`] route (`Some(row)`) or an [`Access::Accounts`] one needs, in
/// words.
fn needs(parties: Option<&str>) -> String {
    match parties {
        Some(row) => format!(
            "the `{ADMIN}` scope, a `{USER}` token of the {row}'s buyer or a `{SELLER}` token of \
             its seller"
        ),
        None => format!("a token with the `{USER}`, `{SELLER}` or `{ADMIN}` scope"),
    }
}

/// No token where one is needed.
fn unauthenticated(what: &str, needs: &str, scopes: &'static str) -> Denied {
    Denied {
        error: ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "reading {what} needs a bearer token: {needs}; send `Authorization: Bearer <token>`"
            ),
        ),
        scopes,
    }
}

/// A token that may not read this: says what it needs, and what the token may read.
fn forbidden(
    claims: &Claims,
    what: &str,
    needs: &str,
    scopes: &'static str,
    table: Table,
) -> Denied {
    Denied {
        error: ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "reading {what} needs {needs}; the token of `{}` (scopes: {}) may read {}",
                quoted(&claims.sub),
                scope_list(claims),
                reach(claims, table)
            ),
        ),
        scopes,
    }
}

fn scope_list(claims: &Claims) -> String {
    if claims.scopes.is_empty() {
        "none".to_owned()
    } else {
        claims
            .scopes
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// What the routes under `access` read, each once, in table order.
fn data(table: Table, access: Access) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for route in table.iter().filter(|r| r.access == access) {
        if !out.iter().any(|d| d == route.docs.data) {
            out.push(route.docs.data.to_owned());
        }
    }
    out
}

/// What a token may read, in words, for 403 messages: listed from the routes' rules.
fn reach(claims: &Claims, table: Table) -> String {
    if claims.has_scope(ADMIN) {
        return "everything (`admin`)".to_owned();
    }
    let sub = quoted(&claims.sub);
    let user = claims.has_scope(USER);
    let seller = claims.has_scope(SELLER);
    let partner = claims.has_scope(PARTNER);
    let mut parts = Vec::new();
    let mut own = |access, whose: &str| {
        let data = data(table, access);
        if !data.is_empty() {
            parts.push(format!("the {} of {whose} `{sub}`", and_list(&data)));
        }
    };
    if user {
        own(Access::User, "user");
    }
    if seller {
        own(Access::Seller, "seller");
    }
    if user || seller {
        parts.extend(data(table, Access::Accounts));
    }
    for open in data(table, Access::Open) {
        parts.push(if partner {
            format!("{open} contents with a distribution right for partner `{sub}`")
        } else {
            open
        });
    }
    let mut text = and_list(&parts);
    if !user && !seller && !partner {
        text.push_str(" only (it has none of the scopes `user`, `seller`, `partner`, `admin`)");
    }
    text
}

/// [`Access::User`] and [`Access::Seller`]: a `scope` token whose `sub` is `id`, or
/// [`ADMIN`].
fn owner(
    caller: &Caller,
    scope: &str,
    id: &str,
    what: &str,
    scopes: &'static str,
    table: Table,
) -> Result<(), Denied> {
    let needs = format!(
        "a `{scope}` token whose `sub` is `{}`, or the `{ADMIN}` scope",
        quoted(id)
    );
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(unauthenticated(what, &needs, scopes)),
        Caller::Token(c) if c.has_scope(ADMIN) || (c.has_scope(scope) && c.sub == id) => Ok(()),
        Caller::Token(c) => Err(forbidden(c, what, &needs, scopes, table)),
    }
}

/// [`Access::Accounts`], and [`Access::Parties`] (`parties`: its row) before the row is
/// read: a token with [`USER`], [`SELLER`] or [`ADMIN`]. A token with none of them can read
/// no such row, so it is refused whether the row exists or not.
fn accounts(
    caller: &Caller,
    what: &str,
    parties: Option<&str>,
    table: Table,
) -> Result<(), Denied> {
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(unauthenticated(what, &needs(parties), ACCOUNT_SCOPES)),
        Caller::Token(c) if [ADMIN, USER, SELLER].iter().any(|s| c.has_scope(s)) => Ok(()),
        Caller::Token(c) => Err(forbidden(c, what, &needs(parties), ACCOUNT_SCOPES, table)),
    }
}
/// A caller holding a verified token of `sub` with `scopes` (for tests).
#[cfg(test)]
pub(crate) fn token(sub: &str, scopes: &[&str]) -> Caller {
    Caller::Token(Claims {
        sub: sub.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: 0,
    })
}
