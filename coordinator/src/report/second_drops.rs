//! A second's `drop_reasons`: the same JSON object as the run's and each
//! worker's (one count per cause, in the order of the names), held as four
//! counts rather than a map. The coordinator keeps one per second for the
//! whole run, and a `BTreeMap<String, u64>` costs a heap node and a string
//! per cause: about 470 bytes a second when the run drops requests, 40 MB
//! over a day (`bench/day.sh`). This costs nothing on the heap, and 20
//! bytes inline (a map is 24). A second's count of one cause fits 32 bits
//! (a run is at most 10 M rps); a larger one is kept as `u32::MAX`.

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use volley_plan::outcome::WORKER_LOST_CAUSE;
use volley_plan::DropCause;

/// The causes a second can name, in the order the JSON lists them (that of
/// the names, as a map writes them).
const KEYS: [&str; 4] = [
    DropCause::BehindSchedule.as_str(),
    DropCause::ConnectionsBusy.as_str(),
    DropCause::MaxInFlight.as_str(),
    WORKER_LOST_CAUSE,
];

/// `dropped` by cause for one second; a cause the second does not name
/// (its bit clear in `named`) is written as no key at all, as in a map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondDrops {
    named: u8,
    counts: [u32; 4],
}

impl SecondDrops {
    /// Nothing named: the JSON omits the field.
    pub fn is_empty(&self) -> bool {
        self.named == 0
    }

    /// The count of cause `key`, if the second names it.
    pub fn get(&self, key: &str) -> Option<u64> {
        let i = KEYS.iter().position(|k| *k == key)?;
        (self.named & (1 << i) != 0).then(|| u64::from(self.counts[i]))
    }

    /// The causes named, in the JSON's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KEYS.iter()
            .enumerate()
            .filter(|(i, _)| self.named & (1 << i) != 0)
            .map(|(i, k)| (*k, u64::from(self.counts[i])))
    }

    /// Names cause `key` with `n` (at most `u32::MAX`); false (and nothing
    /// kept) for a cause this version does not know.
    pub fn set(&mut self, key: &str, n: u64) -> bool {
        match KEYS.iter().position(|k| *k == key) {
            Some(i) => {
                self.named |= 1 << i;
                self.counts[i] = u32::try_from(n).unwrap_or(u32::MAX);
                true
            }
            None => false,
        }
    }
}

impl<'a> FromIterator<(&'a str, u64)> for SecondDrops {
    /// Causes this version does not know are left out.
    fn from_iter<I: IntoIterator<Item = (&'a str, u64)>>(iter: I) -> Self {
        let mut d = SecondDrops::default();
        for (k, n) in iter {
            d.set(k, n);
        }
        d
    }
}

impl Serialize for SecondDrops {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.iter().count();
        let mut map = s.serialize_map(Some(n))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, &v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SecondDrops {
    /// Any object of counts, as a map reads it; a cause this version does
    /// not know (a newer report's) is skipped: the run's own `drop_reasons`
    /// keeps every one.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counts;
        impl<'de> Visitor<'de> for Counts {
            type Value = SecondDrops;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of drop counts by cause")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<SecondDrops, A::Error> {
                let mut out = SecondDrops::default();
                while let Some((k, n)) = a.next_entry::<String, u64>()? {
                    out.set(&k, n);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Counts)
    }
}

/// The schema of the map it stands for, so `report.schema.json` does not
/// change.
impl JsonSchema for SecondDrops {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        <BTreeMap<String, u64>>::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        <BTreeMap<String, u64>>::schema_id()
    }

    fn inline_schema() -> bool {
        <BTreeMap<String, u64>>::inline_schema()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <BTreeMap<String, u64>>::json_schema(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(d: &SecondDrops) -> BTreeMap<String, u64> {
        serde_json::from_value(serde_json::to_value(d).unwrap()).unwrap()
    }

    /// Every subset of the causes, with zero and non-zero counts, writes
    /// exactly the JSON the map wrote, and reads back to itself.
    #[test]
    fn it_writes_and_reads_what_the_map_did() {
        for present in 0u32..16 {
            for base in [0u64, 7] {
                let m: BTreeMap<String, u64> = KEYS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| present & (1 << i) != 0)
                    .map(|(i, k)| (k.to_string(), base * i as u64))
                    .collect();
                let d: SecondDrops = m.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                assert_eq!(
                    serde_json::to_string(&d).unwrap(),
                    serde_json::to_string(&m).unwrap()
                );
                assert_eq!(map(&d), m);
                assert_eq!(d.is_empty(), m.is_empty());
                let back: SecondDrops =
                    serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
                assert_eq!(back, d);
                for k in KEYS {
                    assert_eq!(d.get(k), m.get(k).copied(), "{k}");
                }
            }
        }
    }

    #[test]
    fn a_cause_it_does_not_know_is_skipped_when_read() {
        let d: SecondDrops =
            serde_json::from_str(r#"{"max_in_flight": 3, "cosmic_rays": 9}"#).unwrap();
        assert_eq!(d.iter().collect::<Vec<_>>(), [("max_in_flight", 3)]);
        let mut d = SecondDrops::default();
        assert!(!d.set("cosmic_rays", 1));
        assert!(d.is_empty());
        assert!(serde_json::from_str::<SecondDrops>(r#"{"max_in_flight": -1}"#).is_err());
        let mut big = SecondDrops::default();
        big.set("max_in_flight", u64::MAX);
        assert_eq!(big.get("max_in_flight"), Some(u64::from(u32::MAX)));
    }

    #[test]
    fn it_is_smaller_than_the_map_it_replaces() {
        assert!(std::mem::size_of::<SecondDrops>() <= std::mem::size_of::<BTreeMap<String, u64>>());
    }

    #[test]
    fn its_schema_is_the_maps() {
        let ours = schemars::SchemaGenerator::default().into_root_schema_for::<SecondDrops>();
        let map =
            schemars::SchemaGenerator::default().into_root_schema_for::<BTreeMap<String, u64>>();
        assert_eq!(ours.as_value().get("type"), map.as_value().get("type"));
        assert_eq!(
            ours.as_value().get("additionalProperties"),
            map.as_value().get("additionalProperties")
        );
    }
}
