//! The path parameters several routes share.

use crate::table::Param;

/// `{user_id}`.
pub(super) const USER_ID: Param = Param {
    name: "user_id",
    description: "The user's id (the `sub` of a `user` token).",
};

/// `{content_id}`.
pub(super) const CONTENT_ID: Param = Param {
    name: "content_id",
    description: "The content's id.",
};
