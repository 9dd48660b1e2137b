//! Who may read what: the scopes, the caller of a request and the rules of each route.
//!
//! A token's `sub` is an identity whose kind its scopes tell: [`USER`] (`sub` is the user
//! id), [`SELLER`] (the seller id), [`PARTNER`] (the partner id of catalog distribution
//! rights); [`ADMIN`] reads everything. A token may carry several scopes. The rules, per
//! route, are in the crate documentation ("Authorization"); this module implements them.
//!
//! With no [`Authenticator`](fleuve_service::auth::Authenticator) configured every route is
//! open and the `Authorization` header is not read.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use fleuve_projections::catalog::{DistributionRight, PublishedContent};
use fleuve_projections::orders::Order;
use fleuve_service::auth::{challenge, Claims};
use fleuve_service::ApiError;

use crate::routes::quoted;
use crate::AppState;

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

/// A refusal: 401 (`unauthorized`) or 403 (`forbidden`), answered with the
/// `WWW-Authenticate` challenge naming the scopes that would be accepted.
#[derive(Debug)]
pub(crate) struct Denied {
    error: ApiError,
    /// The scopes that can read the resource, space-separated.
    scopes: &'static str,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        challenge(self.error, self.scopes)
    }
}

impl Denied {
    /// No token where one is needed.
    fn unauthenticated(what: &str, needs: &str, scopes: &'static str) -> Self {
        Self {
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
    fn forbidden(claims: &Claims, what: &str, needs: &str, scopes: &'static str) -> Self {
        Self {
            error: ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "reading {what} needs {needs}; the token of `{}` (scopes: {}) may read {}",
                    quoted(&claims.sub),
                    scope_list(claims),
                    reach(claims)
                ),
            ),
            scopes,
        }
    }

    #[cfg(test)]
    pub(crate) fn error(&self) -> &ApiError {
        &self.error
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

/// What a token may read, in words, for 403 messages.
fn reach(claims: &Claims) -> String {
    if claims.has_scope(ADMIN) {
        return "everything (`admin`)".to_owned();
    }
    let sub = quoted(&claims.sub);
    let user = claims.has_scope(USER);
    let seller = claims.has_scope(SELLER);
    let mut parts = Vec::new();
    if user {
        parts.push(format!(
            "the progress, bookmarks and orders of user `{sub}`"
        ));
    }
    if seller {
        parts.push(format!("the orders of seller `{sub}`"));
    }
    if user || seller {
        parts.push("stock levels".to_owned());
    }
    if claims.has_scope(PARTNER) {
        parts.push(format!(
            "the catalog contents with a distribution right for partner `{sub}`"
        ));
    } else {
        parts.push("the catalog".to_owned());
    }
    let mut text = match parts.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    if !user && !seller && !claims.has_scope(PARTNER) {
        text.push_str(" only (it has none of the scopes `user`, `seller`, `partner`, `admin`)");
    }
    text
}

/// `/v1/users/{user_id}/…` and `/v1/buyers/{user_id}/orders`: a [`USER`] token whose
/// `sub` is `user_id`, or [`ADMIN`]. `what` names the data in messages.
pub(crate) fn user_data(caller: &Caller, user_id: &str, what: &str) -> Result<(), Denied> {
    let needs = format!(
        "a `{USER}` token whose `sub` is `{}`, or the `{ADMIN}` scope",
        quoted(user_id)
    );
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(Denied::unauthenticated(what, &needs, "user admin")),
        Caller::Token(c) if c.has_scope(ADMIN) || (c.has_scope(USER) && c.sub == user_id) => Ok(()),
        Caller::Token(c) => Err(Denied::forbidden(c, what, &needs, "user admin")),
    }
}

/// `/v1/sellers/{seller_id}/orders`: a [`SELLER`] token whose `sub` is `seller_id`, or
/// [`ADMIN`].
pub(crate) fn seller_data(caller: &Caller, seller_id: &str, what: &str) -> Result<(), Denied> {
    let needs = format!(
        "a `{SELLER}` token whose `sub` is `{}`, or the `{ADMIN}` scope",
        quoted(seller_id)
    );
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(Denied::unauthenticated(what, &needs, "seller admin")),
        Caller::Token(c) if c.has_scope(ADMIN) || (c.has_scope(SELLER) && c.sub == seller_id) => {
            Ok(())
        }
        Caller::Token(c) => Err(Denied::forbidden(c, what, &needs, "seller admin")),
    }
}

const ORDER_NEEDS: &str =
    "the `admin` scope, a `user` token of the order's buyer or a `seller` token of its seller";

/// `/v1/orders/{order_id}`, before the order is read: a token with [`USER`], [`SELLER`]
/// or [`ADMIN`]. A token with none of them can read no order, so it is refused whether the
/// order exists or not.
pub(crate) fn any_order(caller: &Caller, what: &str) -> Result<(), Denied> {
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(Denied::unauthenticated(
            what,
            ORDER_NEEDS,
            "user seller admin",
        )),
        Caller::Token(c) if [ADMIN, USER, SELLER].iter().any(|s| c.has_scope(s)) => Ok(()),
        Caller::Token(c) => Err(Denied::forbidden(c, what, ORDER_NEEDS, "user seller admin")),
    }
}

/// `/v1/orders/{order_id}`, once read: [`ADMIN`], or a [`USER`] token of its buyer, or a
/// [`SELLER`] token of its seller. (An absent order is a 404 for every caller
/// [`any_order`] lets through.)
pub(crate) fn order(caller: &Caller, order: &Order, what: &str) -> Result<(), Denied> {
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(Denied::unauthenticated(
            what,
            ORDER_NEEDS,
            "user seller admin",
        )),
        Caller::Token(c)
            if c.has_scope(ADMIN)
                || (c.has_scope(USER) && c.sub == order.buyer_id)
                || (c.has_scope(SELLER) && c.sub == order.seller_id) =>
        {
            Ok(())
        }
        Caller::Token(c) => Err(Denied::forbidden(c, what, ORDER_NEEDS, "user seller admin")),
    }
}

/// `/v1/inventory/{sku}`: a token with [`USER`], [`SELLER`] or [`ADMIN`].
pub(crate) fn inventory(caller: &Caller, what: &str) -> Result<(), Denied> {
    const NEEDS: &str = "a token with the `user`, `seller` or `admin` scope";
    match caller {
        Caller::Open => Ok(()),
        Caller::Anonymous => Err(Denied::unauthenticated(what, NEEDS, "user seller admin")),
        Caller::Token(c) if [ADMIN, USER, SELLER].iter().any(|s| c.has_scope(s)) => Ok(()),
        Caller::Token(c) => Err(Denied::forbidden(c, what, NEEDS, "user seller admin")),
    }
}

/// What part of the catalog a caller sees. The catalog is open: anonymous callers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CatalogView {
    /// Every publishable content, with every distribution right: [`ADMIN`], or
    /// authentication off.
    All,
    /// The publishable contents with a distribution right for this partner, with that
    /// right only: a [`PARTNER`] token without [`ADMIN`].
    Partner(String),
    /// Every publishable content, without distribution rights: anonymous callers and other
    /// tokens.
    Public,
}

impl CatalogView {
    pub(crate) fn of(caller: &Caller) -> Self {
        match caller {
            Caller::Open => CatalogView::All,
            Caller::Anonymous => CatalogView::Public,
            Caller::Token(c) if c.has_scope(ADMIN) => CatalogView::All,
            Caller::Token(c) if c.has_scope(PARTNER) => CatalogView::Partner(c.sub.clone()),
            Caller::Token(_) => CatalogView::Public,
        }
    }

    /// Whether the caller sees this (publishable) content.
    pub(crate) fn shows(&self, content: &PublishedContent) -> bool {
        match self {
            CatalogView::All | CatalogView::Public => true,
            CatalogView::Partner(p) => content.rights.iter().any(|r| &r.partner == p),
        }
    }

    /// The distribution rights of a content the caller sees; `None` when it sees none.
    pub(crate) fn rights<'c>(
        &self,
        content: &'c PublishedContent,
    ) -> Option<Vec<&'c DistributionRight>> {
        match self {
            CatalogView::All => Some(content.rights.iter().collect()),
            CatalogView::Partner(p) => {
                Some(content.rights.iter().filter(|r| &r.partner == p).collect())
            }
            CatalogView::Public => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn token(sub: &str, scopes: &[&str]) -> Caller {
        Caller::Token(Claims {
            sub: sub.to_owned(),
            scopes: scopes
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>(),
            expires_at: 0,
        })
    }

    #[test]
    fn user_data_is_for_its_user_or_admin() {
        assert!(user_data(&Caller::Open, "u", "x").is_ok());
        assert!(user_data(&token("u", &[USER]), "u", "x").is_ok());
        assert!(user_data(&token("root", &[ADMIN]), "u", "x").is_ok());
        let anon = user_data(&Caller::Anonymous, "u", "x").unwrap_err();
        assert_eq!(anon.error().status, StatusCode::UNAUTHORIZED);
        assert_eq!(anon.error().code, "unauthorized");
        for caller in [
            token("v", &[USER]),
            token("u", &[SELLER]),
            token("u", &[PARTNER]),
            token("u", &[]),
        ] {
            let e = user_data(&caller, "u", "the progress of user `u`").unwrap_err();
            assert_eq!(e.error().status, StatusCode::FORBIDDEN, "{caller:?}");
            assert_eq!(e.error().code, "forbidden");
            assert!(
                e.error().message.contains("the progress of user `u`"),
                "{}",
                e.error().message
            );
        }
    }

    #[test]
    fn forbidden_messages_say_what_the_token_may_read() {
        let e = user_data(
            &token("v", &[USER, SELLER]),
            "u",
            "the bookmarks of user `u`",
        )
        .unwrap_err();
        let m = &e.error().message;
        assert!(m.contains("a `user` token whose `sub` is `u`"), "{m}");
        assert!(m.contains("the token of `v` (scopes: seller user)"), "{m}");
        assert!(
            m.contains("the progress, bookmarks and orders of user `v`, the orders of seller `v`, stock levels and the catalog"),
            "{m}"
        );
        let e = inventory(&token("p", &[PARTNER]), "the stock of sku `s`").unwrap_err();
        let m = &e.error().message;
        assert!(
            m.contains("may read the catalog contents with a distribution right for partner `p`"),
            "{m}"
        );
        let e = inventory(&token("nobody", &["events:write"]), "x").unwrap_err();
        assert!(
            e.error().message.contains("the catalog only (it has none"),
            "{}",
            e.error().message
        );
    }

    #[test]
    fn catalog_views() {
        assert_eq!(CatalogView::of(&Caller::Open), CatalogView::All);
        assert_eq!(CatalogView::of(&Caller::Anonymous), CatalogView::Public);
        assert_eq!(
            CatalogView::of(&token("p", &[PARTNER, ADMIN])),
            CatalogView::All
        );
        assert_eq!(
            CatalogView::of(&token("p", &[PARTNER, USER])),
            CatalogView::Partner("p".into())
        );
        assert_eq!(CatalogView::of(&token("u", &[USER])), CatalogView::Public);
    }
}
