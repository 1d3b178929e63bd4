//! Topic settings changed in place through the Kafka admin API's
//! `IncrementalAlterConfigs` (KIP-339), so that a deployment whose topics were
//! created before a setting existed (a retention, a cleanup policy) gets it from the
//! same `cmctl topics` that creates them.
//!
//! The rdkafka crate wraps only the older `AlterConfigs`, which tansu 0.6 does not
//! serve (and which replaces every setting of a topic at once); librdkafka has the
//! incremental call, reached here through the crate's own bindings. This is the
//! workspace's only unsafe code: each call below is librdkafka's documented admin
//! sequence (make a queue and the resources, send, poll one event, read its result,
//! free everything), on one thread, with every pointer owned by this function.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::ptr;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

/// What a topic's settings change failed on.
#[derive(Debug, thiserror::Error)]
pub enum AlterError {
    #[error("a topic name or setting holds a NUL byte: {0:?}")]
    Nul(String),
    #[error("setting {key} of topic {topic}: {message}")]
    Setting {
        topic: String,
        key: String,
        message: String,
    },
    #[error("changing topic settings: the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("changing the settings of topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error("changing topic settings: {0}")]
    Request(String),
}

/// Sets `settings` (key, value) on each topic, leaving its other settings alone.
/// Blocking: call it from a blocking thread.
pub(super) fn set_topic_settings(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[(String, Vec<(String, String)>)],
    timeout: Duration,
) -> Result<(), AlterError> {
    if topics.is_empty() {
        return Ok(());
    }
    // Everything handed to librdkafka as a C string, made before any allocation
    // on its side so that a bad name frees nothing half-built.
    let nul = |s: &str| CString::new(s).map_err(|_| AlterError::Nul(s.to_owned()));
    let mut owned: Vec<(CString, Vec<(CString, CString)>)> = Vec::with_capacity(topics.len());
    for (topic, settings) in topics {
        let mut pairs = Vec::with_capacity(settings.len());
        for (key, value) in settings {
            pairs.push((nul(key)?, nul(value)?));
        }
        owned.push((nul(topic)?, pairs));
    }
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let rk = admin.inner().native_ptr();

    // SAFETY: `rk` is the live handle of `admin`, borrowed for this call. Every
    // object created here is destroyed before returning, on every path (`Native`'s
    // drop); librdkafka copies the C strings it is given, so `owned` only has to
    // outlive the calls that read them.
    unsafe {
        let mut native = Native {
            queue: rd::rd_kafka_queue_new(rk),
            options: rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            ),
            resources: Vec::with_capacity(owned.len()),
            event: ptr::null_mut(),
        };
        let mut errstr = [0 as std::os::raw::c_char; 512];
        // The request's own timeout (librdkafka's default is 5 s); an error here
        // only means the default stays.
        let _ = rd::rd_kafka_AdminOptions_set_request_timeout(
            native.options,
            millis,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        for (topic, pairs) in &owned {
            let resource = rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                topic.as_ptr(),
            );
            native.resources.push(resource);
            for (key, value) in pairs {
                let error = rd::rd_kafka_ConfigResource_add_incremental_config(
                    resource,
                    key.as_ptr(),
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    value.as_ptr(),
                );
                if !error.is_null() {
                    let message = text(rd::rd_kafka_error_string(error));
                    rd::rd_kafka_error_destroy(error);
                    return Err(AlterError::Setting {
                        topic: topic.to_string_lossy().into_owned(),
                        key: key.to_string_lossy().into_owned(),
                        message,
                    });
                }
            }
        }
        rd::rd_kafka_IncrementalAlterConfigs(
            rk,
            native.resources.as_mut_ptr(),
            native.resources.len(),
            native.options,
            native.queue,
        );
        // The one event this queue gets: the request's result. A little longer
        // than the request's own timeout, so that its timeout error comes back.
        native.event = rd::rd_kafka_queue_poll(native.queue, millis.saturating_add(2_000));
        if native.event.is_null() {
            return Err(AlterError::Timeout(timeout));
        }
        if rd::rd_kafka_event_error(native.event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(AlterError::Request(text(rd::rd_kafka_event_error_string(
                native.event,
            ))));
        }
        let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(native.event);
        if result.is_null() {
            return Err(AlterError::Request(
                "the broker's answer was not a result".into(),
            ));
        }
        let mut count = 0usize;
        let answered = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let resource = *answered.add(i);
            if rd::rd_kafka_ConfigResource_error(resource)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                let message = match text(rd::rd_kafka_ConfigResource_error_string(resource)) {
                    m if m.is_empty() => {
                        format!("{:?}", rd::rd_kafka_ConfigResource_error(resource))
                    }
                    m => m,
                };
                return Err(AlterError::Topic {
                    topic: text(rd::rd_kafka_ConfigResource_name(resource)),
                    message,
                });
            }
        }
        Ok(())
    }
}

/// librdkafka's objects of one request, freed together.
struct Native {
    queue: *mut rd::rd_kafka_queue_t,
    options: *mut rd::rd_kafka_AdminOptions_t,
    resources: Vec<*mut rd::rd_kafka_ConfigResource_t>,
    event: *mut rd::rd_kafka_event_t,
}

impl Drop for Native {
    fn drop(&mut self) {
        // SAFETY: each pointer was made by librdkafka in `set_topic_settings` and is
        // freed once, here; null ones were never made. The result's resources
        // belong to the event and go with it.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            for resource in self.resources.drain(..) {
                rd::rd_kafka_ConfigResource_destroy(resource);
            }
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

/// A C string librdkafka returned (owned by it), or "" for none.
///
/// # Safety
/// `s` is null or a NUL-terminated string alive for this call.
unsafe fn text(s: *const std::os::raw::c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        // SAFETY: as the caller promises.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}
