//! ZIP → city, state and zone, and area code → zone, from the `zipcodes` crate's
//! embedded USPS data. Its own lookups scan the whole list, so the data is indexed
//! once per process into hash maps (about 42,000 ZIPs).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use chrono_tz::Tz;
use schemas::E164;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub city: String,
    pub state: String,
    pub zone: Option<Tz>,
}

pub struct Geo {
    zips: HashMap<u32, Place>,
    /// `None` when the area code's ZIPs span more than one zone.
    area_codes: HashMap<u16, Option<Tz>>,
}

/// The index, built on first use. Call at start-up so the first batch does not pay.
pub fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(Geo::build)
}

impl Geo {
    fn build() -> Self {
        let started = std::time::Instant::now();
        let mut zips = HashMap::new();
        let mut zones_by_code: HashMap<u16, HashSet<Tz>> = HashMap::new();
        for entry in zipcodes::database() {
            let Ok(zip) = entry.zip_code.parse::<u32>() else {
                continue;
            };
            let zone = entry.timezone.parse::<Tz>().ok();
            // Decommissioned ZIPs still appear on old records; an active entry wins.
            if entry.active || !zips.contains_key(&zip) {
                zips.insert(
                    zip,
                    Place {
                        city: entry.city.clone(),
                        state: entry.state.clone(),
                        zone,
                    },
                );
            }
            if let Some(zone) = zone {
                for code in &entry.area_codes {
                    if let Ok(code) = code.parse::<u16>() {
                        zones_by_code.entry(code).or_default().insert(zone);
                    }
                }
            }
        }
        let area_codes = zones_by_code
            .into_iter()
            .map(|(code, zones)| {
                let only = (zones.len() == 1)
                    .then(|| zones.into_iter().next())
                    .flatten();
                (code, only)
            })
            .collect();
        tracing::info!(
            zips = zips.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ZIP index built"
        );
        Self { zips, area_codes }
    }

    /// A normalised five-digit ZIP (see `coerce::zip`).
    pub fn place(&self, zip: &str) -> Option<&Place> {
        self.zips.get(&zip.get(..5)?.parse().ok()?)
    }

    /// The zone of a North American number's area code, when all of its ZIPs share
    /// one zone.
    pub fn area_code_zone(&self, number: &E164) -> Option<Tz> {
        let digits = number.as_str().strip_prefix("+1")?;
        let code: u16 = digits.get(..3)?.parse().ok()?;
        self.area_codes.get(&code).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn zips_resolve_to_city_state_and_zone() {
        let place = geo().place("02134").unwrap();
        assert_eq!(
            (place.city.as_str(), place.state.as_str()),
            ("Allston", "MA")
        );
        assert_eq!(place.zone, Some(chrono_tz::America::New_York));
        let phoenix = geo().place("85001").unwrap();
        assert_eq!(phoenix.zone, Some(chrono_tz::America::Phoenix));
        assert!(geo().place("00000").is_none());
        assert!(geo().place("12").is_none());
    }

    #[test]
    fn area_codes_give_a_zone_only_when_unambiguous() {
        let number = |n: &str| E164::parse(n, Id::US).unwrap();
        assert_eq!(
            geo().area_code_zone(&number("+14155552671")),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(
            geo().area_code_zone(&number("+16025550188")),
            Some(chrono_tz::America::Phoenix)
        );
        assert_eq!(
            geo().area_code_zone(&number("+442079460000")),
            None,
            "not a North American number"
        );
    }
}
