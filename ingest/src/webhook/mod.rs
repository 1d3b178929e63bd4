//! `POST /api/integrations/webhook/{clientId}`.

mod body;
mod handler;

pub use body::{parse_body, BodyError, BodyFormat, ParsedBody, RejectedRecord};
pub use handler::{handle, WebhookState};
