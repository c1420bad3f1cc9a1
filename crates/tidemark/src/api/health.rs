//! `/-/healthy` and `/-/ready`.
//!
//! The database is opened (and its WAL replayed) before the router exists,
//! so once this answers at all it is ready.

/// `GET|HEAD /-/healthy`.
pub(crate) async fn healthy() -> &'static str {
    "Tidemark is Healthy.\n"
}

/// `GET|HEAD /-/ready`.
pub(crate) async fn ready() -> &'static str {
    "Tidemark is Ready.\n"
}
