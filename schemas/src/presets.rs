//! Mapping presets for the call platforms partners use, so onboarding is picking a
//! preset, filling in who the partner is, and adjusting. Each preset is a JSON file
//! in `schemas/presets/`, embedded here. `cmctl integrations new --preset NAME`
//! prints a complete integration from one.

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

/// A version-1 integration from a preset, validated.
pub fn integration(
    preset_name: &str,
    client_id: ClientId,
    account: &str,
    name: &str,
    source: Source,
) -> Result<Integration, IntegrationError> {
    let preset = preset(preset_name).ok_or_else(|| IntegrationError::Invalid {
        client_id: client_id.to_string(),
        field: "preset".into(),
        problem: format!(
            "no preset {preset_name:?}; there are: {}",
            names().join(", ")
        ),
    })?;
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
        poll: None,
        deleted: false,
    };
    integration.validate()?;
    Ok(integration)
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
