//! `POST /api/integrations/webhook/{clientId}`.

mod auth;
mod body;
mod handler;
mod limits;

pub use body::{parse_body, BodyError, BodyFormat, ParsedBody, RejectedRecord};
pub use handler::{deliveries, handle, Deliveries, WebhookState};
pub use limits::RateLimits;
