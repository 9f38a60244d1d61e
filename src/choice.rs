//! Closed sets of words the core accepts: a mirror's policy and mode, a
//! repository kind, a merge policy, a stage, a test queue.
//!
//! Each such enum lists its values with their word and a one-line
//! description, so a front end (the CLI's value parsers, its generated man
//! pages and completions) offers exactly the core's set without a mirrored
//! enum and mapping code of its own. This module knows no front end.

/// An enum whose values each have one word (as typed and as stored).
pub trait Choice: Copy + PartialEq + Send + Sync + 'static {
    /// What is being chosen, for messages ("policy", "stage").
    const WHAT: &'static str;
    /// Every value, its word and a one-line description.
    const CHOICES: &'static [(Self, &'static str, &'static str)];

    /// The value's word.
    fn word(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(v, _, _)| *v == self)
            .map_or("", |(_, w, _)| w)
    }

    /// The value a word names, if any.
    fn from_word(word: &str) -> Option<Self> {
        Self::CHOICES
            .iter()
            .find(|(_, w, _)| *w == word)
            .map(|(v, _, _)| *v)
    }
}

/// Implements `Display` (the word) and `FromStr` for a [`Choice`].
#[macro_export]
macro_rules! choice_words {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::word(*self))
            }
        }
        impl std::str::FromStr for $t {
            type Err = $crate::choice::UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t as $crate::choice::Choice>::from_word(s)
                    .ok_or_else(|| $crate::choice::UnknownWord::new::<$t>(s))
            }
        }
    };
}

/// A word that names no value of a [`Choice`].
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{word}` (use one of: {choices})")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub choices: String,
}

impl UnknownWord {
    /// A word the user gave: a usage error.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

impl UnknownWord {
    pub fn new<T: Choice>(word: &str) -> Self {
        Self {
            what: T::WHAT,
            word: word.to_owned(),
            choices: T::CHOICES
                .iter()
                .map(|(_, w, _)| *w)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Choice;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Blue,
    }
    impl Choice for Colour {
        const WHAT: &'static str = "colour";
        const CHOICES: &'static [(Self, &'static str, &'static str)] =
            &[(Self::Red, "red", "warm"), (Self::Blue, "blue", "cold")];
    }
    crate::choice_words!(Colour);

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        assert_eq!(Colour::Blue.to_string(), "blue");
        assert_eq!("red".parse::<Colour>().ok(), Some(Colour::Red));
        let err = "green".parse::<Colour>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown colour `green` (use one of: red, blue)"
        );
    }
}
