//! What every part's clap configuration shares: durations, which the flags
//! and variables give in whole milliseconds or seconds (`--x-ms`, `X_MS`)
//! and the code holds as [`Duration`], and the two ways a configuration is
//! made without a command line: from the environment alone (a service run
//! as a process of a tool) or from the defaults alone (a service run in
//! code, which then sets what it needs field by field).

use std::num::ParseIntError;
use std::time::Duration;

/// A value in whole milliseconds (`--upstream-timeout-ms=5000`).
pub fn milliseconds(value: &str) -> Result<Duration, ParseIntError> {
    value.parse().map(Duration::from_millis)
}

/// A value in whole seconds (`--token-ttl-seconds=900`).
pub fn seconds(value: &str) -> Result<Duration, ParseIntError> {
    value.parse().map(Duration::from_secs)
}

/// The configuration `C` holds when given no flag and no variable: the
/// defaults its `--help` shows, whatever the process's environment says
/// (it is not read, so a test's services do not depend on the shell that
/// runs it).
///
/// Panics when a default does not parse: a mistake in `C`'s definition.
pub fn defaults<C: clap::Parser>() -> C {
    let command = C::command().mut_args(|argument| argument.env(None));
    let name = command.get_name().to_owned();
    let matches = command.try_get_matches_from([name]).unwrap_or_else(|error| panic!("the defaults do not parse: {error}"));
    C::from_arg_matches(&matches).unwrap_or_else(|error| panic!("the defaults do not parse: {error}"))
}

/// The configuration `C` from the environment alone, with no command line:
/// what its binary reads when started without flags.
pub fn from_environment<C: clap::Parser>() -> Result<C, clap::Error> {
    C::try_parse_from([C::command().get_name().to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    #[command(name = "example")]
    struct Example {
        #[arg(long = "wait-ms", env = "AGORA_CONFIG_TEST_WAIT_MS", default_value = "1500", value_parser = milliseconds)]
        wait: Duration,
        #[arg(long = "ttl-seconds", default_value = "900", value_parser = seconds)]
        ttl: Duration,
    }

    #[test]
    fn durations_are_given_in_whole_milliseconds_or_seconds() {
        use clap::Parser;
        let example = Example::try_parse_from(["example", "--wait-ms=250", "--ttl-seconds=5"]).unwrap();
        assert_eq!(example.wait, Duration::from_millis(250));
        assert_eq!(example.ttl, Duration::from_secs(5));
        assert!(Example::try_parse_from(["example", "--wait-ms=1.5"]).is_err());
        assert!(Example::try_parse_from(["example", "--wait-ms=-1"]).is_err());
    }

    #[test]
    fn the_defaults_are_the_ones_the_help_shows() {
        let example: Example = defaults();
        assert_eq!(example.wait, Duration::from_millis(1500));
        assert_eq!(example.ttl, Duration::from_secs(900));
    }
}
