//! `POST /api/integrations/webhook/{clientId}`.

mod auth;
mod body;
mod handler;
mod limits;

pub use auth::check_signature;
pub use body::{parse_body, BodyError, BodyFormat, ParsedBody, RejectedRecord};
pub(crate) use handler::{accepting, content_key, dead_letter, encoded_letter};
pub use handler::{deliveries, handle, Deliveries, WebhookState};
pub use limits::RateLimits;
