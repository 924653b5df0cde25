//! The field names of a struct and the variant names of an enum, read from their `Deserialize`
//! impls: serde hands them to the deserializer, so a deserializer that only records them and then
//! stops learns the names without a value. This is what `serde-aux`'s `serde_introspect` does; it
//! is a few lines, so we keep them rather than a dependency (with chrono and more) for them.

use serde::Deserialize;
use serde::de::{self, Visitor};

/// What the recording deserializer saw.
#[derive(Default)]
struct Names {
    fields: Option<&'static [&'static str]>,
    variants: Option<&'static [&'static str]>,
}

impl<'de> de::Deserializer<'de> for &mut Names {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("names only"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.fields = Some(fields);
        Err(de::Error::custom("names only"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.variants = Some(variants);
        Err(de::Error::custom("names only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The keys of a `#[derive(Deserialize)]` struct, in declaration order (after renames).
pub(crate) fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = Names::default();
    let _ = T::deserialize(&mut names);
    names.fields.unwrap_or_default()
}

/// The words of a `#[derive(Deserialize)]` enum, in declaration order (after renames).
pub(crate) fn variants<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = Names::default();
    let _ = T::deserialize(&mut names);
    names.variants.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_struct_and_an_enum() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct S {
            a: u8,
            #[serde(rename = "b-b")]
            b: u8,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case")]
        enum E {
            One,
            GccHigh,
        }
        assert_eq!(fields::<S>(), ["a", "b-b"]);
        assert_eq!(variants::<E>(), ["one", "gcc-high"]);
    }
}
