//! The line of a node in a YAML document, by path. `yaml_serde` exposes positions only on
//! errors, so the document is parsed once more with a probe that fails on purpose at the
//! node: the parser attaches that node's position to the error. Only used for problems,
//! so the extra parse costs nothing on the happy path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

const PROBE_HIT: &str = "drover: probe reached its node";

/// The line of the node at `path` in document `index` (0-based) of `text`.
pub fn locate(text: &str, index: usize, path: &[String]) -> Option<usize> {
    let doc = yaml_serde::Deserializer::from_str(text).nth(index)?;
    match Probe(path).deserialize(doc) {
        Err(e) if e.to_string().contains(PROBE_HIT) => e.location().map(|l| l.line()),
        _ => None,
    }
}

/// Walks a document along `path` and fails at the node it names, so the parser attaches
/// that node's position to the error.
struct Probe<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Probe<'_> {
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(PROBE_HIT))
        } else {
            Ok(())
        }
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(PROBE_HIT));
        };
        while let Some(key) = map.next_key::<Key>()? {
            if key.0.as_deref() == Some(head.as_str()) {
                return map.next_value_seed(Probe(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.0.is_empty() {
            return Err(de::Error::custom(PROBE_HIT));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

/// A mapping key as text when it is a string (other keys never match a path).
struct Key(Option<String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, doc: usize, path: &[&str]) -> Option<usize> {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        locate(text, doc, &path)
    }

    #[test]
    fn nodes_are_found_in_block_and_flow_style_and_in_later_documents() {
        let text = "a: 1\nb:\n  c: x\n  d: {e: [1, 2], f.g: y}\n---\nh: z\n";
        assert_eq!(at(text, 0, &["a"]), Some(1));
        assert_eq!(at(text, 0, &["b", "c"]), Some(3));
        assert_eq!(at(text, 0, &["b", "d", "f.g"]), Some(4));
        assert_eq!(at(text, 0, &["b", "d", "e"]), Some(4));
        assert_eq!(at(text, 1, &["h"]), Some(6));
    }

    #[test]
    fn a_missing_node_or_document_has_no_line() {
        assert_eq!(at("a: 1\n", 0, &["b"]), None);
        assert_eq!(at("a: 1\n", 0, &["a", "deeper"]), None);
        assert_eq!(at("a: 1\n", 3, &["a"]), None);
    }
}
