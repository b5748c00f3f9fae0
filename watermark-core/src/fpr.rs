//! The false-positive rate of a verdict, validated once where it enters (a flag, a profile, an
//! option) instead of at every place that uses it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default false-positive rate of the verdict: one wrongly flagged text in a million.
pub const DEFAULT_FPR: f64 = 1e-6;

/// A false-positive rate: a probability strictly between 0 and 1.
///
/// Serialized as the bare number; deserializing refuses a number outside (0, 1). `Display`
/// writes ordinary rates as decimals (`0.01`) and small ones in scientific notation (`1e-6`),
/// and `FromStr` reads both back.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Fpr(f64);

impl Fpr {
    /// The default rate, [`DEFAULT_FPR`].
    pub const DEFAULT: Fpr = Fpr(DEFAULT_FPR);

    /// `rate` if it lies in (0, 1); NaN and the ends are refused.
    pub fn new(rate: f64) -> Result<Self> {
        if rate > 0.0 && rate < 1.0 {
            Ok(Fpr(rate))
        } else {
            Err(Error::InvalidParameter(format!(
                "false-positive rate {rate} must lie in (0, 1)"
            )))
        }
    }

    /// The rate as a number.
    pub fn get(self) -> f64 {
        self.0
    }

    /// log10 of the rate: verdicts compare it with log10 p, which never underflows.
    pub fn log10(self) -> f64 {
        self.0.log10()
    }
}

impl Default for Fpr {
    fn default() -> Self {
        Fpr::DEFAULT
    }
}

impl TryFrom<f64> for Fpr {
    type Error = Error;

    fn try_from(rate: f64) -> Result<Self> {
        Fpr::new(rate)
    }
}

impl From<Fpr> for f64 {
    fn from(fpr: Fpr) -> f64 {
        fpr.0
    }
}

impl FromStr for Fpr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let rate: f64 = s.trim().parse().map_err(|_| {
            Error::InvalidParameter(format!("false-positive rate {s:?} is not a number"))
        })?;
        Fpr::new(rate)
    }
}

impl fmt::Display for Fpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1e-3 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rates_inside_the_unit_interval_are_accepted() {
        for bad in [0.0, 1.0, -0.5, 2.0, f64::NAN, f64::INFINITY] {
            let err = Fpr::new(bad).unwrap_err();
            assert!(err.to_string().contains("false-positive rate"), "{err}");
        }
        assert_eq!(Fpr::new(0.05).unwrap().get(), 0.05);
        assert_eq!(Fpr::default().get(), DEFAULT_FPR);
        assert_eq!(Fpr::DEFAULT.log10(), -6.0);
    }

    #[test]
    fn parses_and_displays_both_notations() {
        assert_eq!("1e-6".parse::<Fpr>().unwrap(), Fpr::DEFAULT);
        assert_eq!(" 0.01 ".parse::<Fpr>().unwrap().get(), 0.01);
        assert!("often".parse::<Fpr>().is_err());
        assert!("0".parse::<Fpr>().is_err());
        assert_eq!(Fpr::DEFAULT.to_string(), "1e-6");
        assert_eq!(Fpr::new(0.01).unwrap().to_string(), "0.01");
        assert_eq!(Fpr::new(2.5e-4).unwrap().to_string(), "2.5e-4");
        for rate in [0.5, 1e-3, 3e-9] {
            let fpr = Fpr::new(rate).unwrap();
            assert_eq!(fpr.to_string().parse::<Fpr>().unwrap(), fpr);
        }
    }

    #[test]
    fn serializes_as_a_bare_number_and_refuses_bad_ones() {
        let fpr = Fpr::new(0.001).unwrap();
        assert_eq!(serde_json::to_string(&fpr).unwrap(), "0.001");
        assert_eq!(serde_json::from_str::<Fpr>("0.001").unwrap(), fpr);
        assert!(serde_json::from_str::<Fpr>("1.5").is_err());
    }
}
