//! Mapping presets for the call platforms partners use, so onboarding is picking a
//! preset, filling in who the partner is, and adjusting. Each preset is a JSON file
//! in `schemas/presets/`, embedded here. `cmctl integrations new --preset NAME`
//! prints a complete integration from one.
//!
//! A preset may carry a `poll` block written from the platform's public API
//! documentation (endpoint, method, body, paging, cursor, auth) with `${name}`
//! holes for what only the client knows (its account id, its key): those are the
//! preset's `settings`, each described, some with a default. An integration polled
//! from a preset is the preset plus its settings.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{ClientId, Integration, IntegrationError, Mapping, Source};

const PRESET_FILES: &[(&str, &str)] = &[
    ("callrail", include_str!("../presets/callrail.json")),
    ("invoca", include_str!("../presets/invoca.json")),
    ("ringba", include_str!("../presets/ringba.json")),
    ("retreaver", include_str!("../presets/retreaver.json")),
    ("twilio", include_str!("../presets/twilio.json")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub preset: String,
    pub description: String,
    pub timezone: String,
    pub currency: String,
    pub default_region: String,
    pub mapping: Mapping,
    /// The poll block, with `${setting}` holes.
    #[serde(default)]
    pub poll: Option<serde_json::Value>,
    /// What each hole of `poll` is.
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
}

/// One value a preset's poll block needs from the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub description: String,
    #[serde(default)]
    pub default: Option<String>,
    /// A credential: never printed back.
    #[serde(default)]
    pub secret: bool,
}

/// Names of the shipped presets.
pub fn names() -> Vec<&'static str> {
    PRESET_FILES.iter().map(|(name, _)| *name).collect()
}

pub fn preset(name: &str) -> Option<Preset> {
    PRESET_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, text)| serde_json::from_str(text).ok())
}

/// A version-1 integration from a preset, validated (without a poll block).
pub fn integration(
    preset_name: &str,
    client_id: ClientId,
    account: &str,
    name: &str,
    source: Source,
) -> Result<Integration, IntegrationError> {
    build(preset_name, client_id, account, name, source, None)
}

/// A version-1 integration from a preset, validated; a polled one (`source` poll)
/// gets the preset's poll block with `settings` filled in, and an error names the
/// first setting missing.
pub fn integration_with(
    preset_name: &str,
    client_id: ClientId,
    account: &str,
    name: &str,
    source: Source,
    settings: &BTreeMap<String, String>,
) -> Result<Integration, IntegrationError> {
    build(
        preset_name,
        client_id,
        account,
        name,
        source,
        Some(settings),
    )
}

fn build(
    preset_name: &str,
    client_id: ClientId,
    account: &str,
    name: &str,
    source: Source,
    settings: Option<&BTreeMap<String, String>>,
) -> Result<Integration, IntegrationError> {
    let preset = preset(preset_name).ok_or_else(|| IntegrationError::Invalid {
        client_id: client_id.to_string(),
        field: "preset".into(),
        problem: format!(
            "no preset {preset_name:?}; there are: {}",
            names().join(", ")
        ),
    })?;
    let invalid = |field: String, problem: String| IntegrationError::Invalid {
        client_id: client_id.to_string(),
        field,
        problem,
    };
    let poll = match (&preset.poll, source, settings) {
        (Some(block), Source::Poll, Some(settings)) => {
            for name in settings.keys() {
                if !preset.settings.contains_key(name) {
                    return Err(invalid(
                        format!("settings.{name}"),
                        format!(
                            "preset {preset_name} has no such setting; it has: {}",
                            preset
                                .settings
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            let filled = fill(block, &|hole| {
                let setting = preset.settings.get(hole);
                settings
                    .get(hole)
                    .cloned()
                    .or_else(|| setting.and_then(|s| s.default.clone()))
                    .ok_or_else(|| {
                        let why = setting
                            .map_or("not described by the preset", |s| s.description.as_str());
                        (format!("settings.{hole}"), format!("missing: {why}"))
                    })
            })
            .map_err(|(field, problem)| invalid(field, problem))?;
            Some(
                serde_json::from_value(filled)
                    .map_err(|e| invalid("poll".into(), format!("the preset's poll block: {e}")))?,
            )
        }
        _ => None,
    };
    let integration = Integration {
        client_id,
        account: account.to_owned(),
        name: name.to_owned(),
        source,
        enabled: true,
        version: 1,
        default_region: preset.default_region,
        timezone: preset.timezone,
        currency: preset.currency,
        decimal_separator: Default::default(),
        csv: Default::default(),
        mapping: preset.mapping,
        enrichment: Default::default(),
        auth: None,
        rate_limit: None,
        poll,
        deleted: false,
    };
    integration.validate()?;
    Ok(integration)
}

/// A setting's value, or (field, problem).
type Lookup<'a> = &'a dyn Fn(&str) -> Result<String, (String, String)>;

/// `value` with every `${name}` in its strings replaced by `lookup(name)`.
fn fill(
    value: &serde_json::Value,
    lookup: Lookup<'_>,
) -> Result<serde_json::Value, (String, String)> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) => {
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                out.push_str(&lookup(&after[..end])?);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| fill(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), fill(v, lookup)?)))
                .collect::<Result<_, (String, String)>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_preset_parses_and_validates() {
        for name in names() {
            let preset = preset(name).unwrap_or_else(|| panic!("preset {name} does not parse"));
            assert_eq!(preset.preset, name);
            integration(
                name,
                ClientId::parse("x").unwrap(),
                "acct",
                "X",
                Source::Poll,
            )
            .unwrap_or_else(|e| panic!("preset {name}: {e}"));
        }
    }

    /// Issue 35: each of the four call platforms' presets polls, given its settings.
    #[test]
    fn the_platform_presets_poll_with_their_settings_filled_in() {
        for name in ["ringba", "invoca", "callrail", "retreaver"] {
            let preset = preset(name).unwrap();
            assert!(preset.poll.is_some(), "{name} has no poll block");
            let settings: BTreeMap<String, String> = preset
                .settings
                .iter()
                .filter(|(_, s)| s.default.is_none())
                .map(|(k, _)| {
                    let value = match k.as_str() {
                        "initial_since" => "2026-11-01T00:00:00Z",
                        "base_url" => "https://x1.example",
                        _ => "x1",
                    };
                    (k.clone(), value.to_owned())
                })
                .collect();
            let integration = integration_with(
                name,
                ClientId::parse("x").unwrap(),
                "acct",
                "X",
                Source::Poll,
                &settings,
            )
            .unwrap_or_else(|e| panic!("preset {name}: {e}"));
            let poll = integration.poll.expect("a poll block");
            assert!(!poll.url.contains("${"), "{name}: {}", poll.url);
            // A required setting left out is named.
            if let Some(required) = settings.keys().next() {
                let mut fewer = settings.clone();
                fewer.remove(required);
                let error = integration_with(
                    name,
                    ClientId::parse("x").unwrap(),
                    "a",
                    "X",
                    Source::Poll,
                    &fewer,
                )
                .unwrap_err()
                .to_string();
                assert!(error.contains(&format!("settings.{required}")), "{error}");
            }
        }
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let err = integration(
            "nope",
            ClientId::parse("x").unwrap(),
            "a",
            "n",
            Source::Poll,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("callrail, invoca, ringba, retreaver"),
            "{err}"
        );
    }
}
