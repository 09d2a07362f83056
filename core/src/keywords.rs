//! The one way the project names the values of a fieldless enum on the command line, in URLs, in JSON-facing
//! messages and in logs: [`keywords!`](crate::keywords!). It gives the enum `ALL`, `KEYWORDS`, `as_str`,
//! `FromStr` (with [`UnknownKeyword`], which lists the accepted words), `Display` and serde's `Serialize` and
//! `Deserialize` (as the keyword string), so one table holds the only spelling of each value; with a leading `clap`
//! it also implements `clap::ValueEnum`, so `--help` lists the words and clap rejects others before any code runs.

// The serde the macro's implementations name, so that a crate using the macro needs no path of its own to it.
#[doc(hidden)]
pub use serde;

/// A word that names no value of a keyword enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?} (expected one of: {expected})")]
pub struct UnknownKeyword {
    /// What the enum names (`"device"`, `"model"`).
    pub what: &'static str,
    /// The word given.
    pub given: String,
    /// The accepted words, comma-separated.
    pub expected: String,
}

/// Implements the keyword interface for a fieldless enum:
/// `keywords!(Type, "what it is", { Variant => "keyword", ... })`, or `keywords!(clap Type, ...)` to also
/// implement `clap::ValueEnum` (the calling crate then depends on clap). `keywords!(@value_enum Type)` adds only
/// the `ValueEnum` implementation (this crate's own enums do so behind its `clap` feature).
#[macro_export]
macro_rules! keywords {
    (clap $ty:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        $crate::keywords!($ty, $what, { $($variant => $word),+ });
        $crate::keywords!(@value_enum $ty);
    };
    (@value_enum $ty:ident) => {
        impl ::clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &Self::ALL
            }

            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                Some(::clap::builder::PossibleValue::new(self.as_str()))
            }
        }
    };
    ($ty:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; [$($word),+].len()] = [$($ty::$variant),+];
            /// The keyword of each value, in the order of `ALL`.
            pub const KEYWORDS: [&'static str; [$($word),+].len()] = [$($word),+];

            /// The keyword of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)+
                }
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::keywords::UnknownKeyword;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($ty::$variant),)+
                    other => Err($crate::keywords::UnknownKeyword {
                        what: $what,
                        given: other.to_string(),
                        expected: Self::KEYWORDS.join(", "),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::keywords::serde::Serialize for $ty {
            fn serialize<S: $crate::keywords::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::keywords::serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::keywords::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = <::std::string::String as $crate::keywords::serde::Deserialize>::deserialize(deserializer)?;
                word.parse().map_err(<D::Error as $crate::keywords::serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fruit {
        Apple,
        Pear,
    }

    crate::keywords!(Fruit, "fruit", { Apple => "apple", Pear => "pear" });

    #[test]
    fn keywords_round_trip_and_name_the_choices() {
        for fruit in Fruit::ALL {
            assert_eq!(fruit.to_string().parse::<Fruit>(), Ok(fruit));
        }
        assert_eq!(Fruit::KEYWORDS, ["apple", "pear"]);
        let error = "plum".parse::<Fruit>().unwrap_err();
        assert_eq!(error.to_string(), "unknown fruit \"plum\" (expected one of: apple, pear)");
    }

    #[test]
    fn serde_uses_the_same_words() {
        assert_eq!(serde_json::to_string(&Fruit::Pear).unwrap(), "\"pear\"");
        assert_eq!(serde_json::from_str::<Fruit>("\"apple\"").unwrap(), Fruit::Apple);
        let error = serde_json::from_str::<Fruit>("\"plum\"").unwrap_err().to_string();
        assert!(error.starts_with("unknown fruit \"plum\" (expected one of: apple, pear)"), "{error}");
    }
}
