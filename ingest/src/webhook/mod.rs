//! `POST /api/integrations/webhook/{clientId}`.

mod body;
pub mod decoders;
pub mod forms;
mod handler;
mod limits;
pub mod refusals;
pub mod verifiers;

pub use body::{parse_body, BodyError, BodyFormat, ParsedBody, RejectedRecord};
pub(crate) use handler::{accepting, content_key, dead_letter, encoded_letter};
pub use handler::{deliveries, handle, Deliveries, WebhookState};
pub use limits::RateLimits;
pub use verifiers::check_signature;
