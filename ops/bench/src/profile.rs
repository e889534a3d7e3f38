//! What a run measures and for how long: a profile (`quick` or `full`) gives
//! every choice, and a flag given on the command line overrides its one
//! choice. The rest of the benchmark reads a [`Plan`], never the profile.

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// 200 users, 10,000 posts, one concurrency, 5 s per point (~6 min).
    Quick,
    /// 1,000 users, 50,000 posts, four concurrencies, 10 s per point.
    Full,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

/// The choices a flag can override, one by one.
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    #[arg(long)]
    users: Option<usize>,
    #[arg(long)]
    posts: Option<usize>,
    /// Concurrency levels of "posts with authors" (comma-separated).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// The concurrency of the table, the ratios and the deep query.
    #[arg(long)]
    headline_concurrency: Option<usize>,
    /// Seconds per measured point.
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up seconds before the first point of each target.
    #[arg(long)]
    warmup: Option<f64>,
    /// createPost per second for the freshness measurement.
    #[arg(long)]
    freshness_rate: Option<f64>,
    #[arg(long)]
    freshness_seconds: Option<f64>,
    /// Subscriber counts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    subscribers: Option<Vec<usize>>,
    /// Posts per second while subscribers listen.
    #[arg(long)]
    subscriber_post_rate: Option<f64>,
    #[arg(long)]
    subscriber_seconds: Option<f64>,
    /// Commands per second of the mixed workload (comma-separated; none
    /// leaves it out).
    #[arg(long, value_delimiter = ',')]
    mixed_write_rates: Option<Vec<f64>>,
}

/// Every choice of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub profile: Profile,
    pub users: usize,
    pub posts: usize,
    /// Concurrency levels, ascending, the headline among them.
    pub levels: Vec<usize>,
    pub headline: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub freshness_rate: f64,
    pub freshness_seconds: f64,
    pub subscriber_levels: Vec<usize>,
    pub subscriber_rate: f64,
    pub subscriber_seconds: f64,
    /// createPost and renameUser per second (half each) while reads run.
    pub mixed_write_rates: Vec<f64>,
}

impl Plan {
    /// The profile's choices.
    pub fn of(profile: Profile) -> Plan {
        let quick = profile == Profile::Quick;
        Plan {
            profile,
            users: if quick { 200 } else { 1_000 },
            posts: if quick { 10_000 } else { 50_000 },
            levels: if quick { vec![32] } else { vec![1, 8, 32, 64] },
            headline: 32,
            seconds: if quick { 5.0 } else { 10.0 },
            warmup: if quick { 2.0 } else { 4.0 },
            freshness_rate: 500.0,
            freshness_seconds: if quick { 5.0 } else { 20.0 },
            subscriber_levels: vec![1_000, 5_000, 10_000],
            subscriber_rate: 5.0,
            subscriber_seconds: if quick { 10.0 } else { 20.0 },
            mixed_write_rates: vec![50.0, 500.0],
        }
    }

    /// The profile's choices with what the flags override.
    pub fn with(mut self, overrides: &Overrides) -> Plan {
        let o = overrides.clone();
        self.users = o.users.unwrap_or(self.users);
        self.posts = o.posts.unwrap_or(self.posts);
        self.headline = o.headline_concurrency.unwrap_or(self.headline);
        let mut levels = o.concurrency.unwrap_or(self.levels);
        levels.push(self.headline);
        levels.sort_unstable();
        levels.dedup();
        self.levels = levels;
        self.seconds = o.seconds.unwrap_or(self.seconds);
        self.warmup = o.warmup.unwrap_or(self.warmup);
        self.freshness_rate = o.freshness_rate.unwrap_or(self.freshness_rate);
        self.freshness_seconds = o.freshness_seconds.unwrap_or(self.freshness_seconds);
        self.subscriber_levels = o.subscribers.unwrap_or(self.subscriber_levels);
        self.subscriber_rate = o.subscriber_post_rate.unwrap_or(self.subscriber_rate);
        self.subscriber_seconds = o.subscriber_seconds.unwrap_or(self.subscriber_seconds);
        self.mixed_write_rates = o.mixed_write_rates.unwrap_or(self.mixed_write_rates);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_overrides_one_choice_of_the_profile() {
        let overrides = Overrides { posts: Some(500), concurrency: Some(vec![64, 8]), ..Overrides::default() };
        let plan = Plan::of(Profile::Quick).with(&overrides);
        assert_eq!(plan.posts, 500);
        assert_eq!(plan.users, 200, "the profile's own choice stays");
        assert_eq!(plan.levels, vec![8, 32, 64], "the headline concurrency is always measured");
    }

    #[test]
    fn the_profiles_differ_in_size_and_length() {
        let (quick, full) = (Plan::of(Profile::Quick), Plan::of(Profile::Full));
        assert!(quick.posts < full.posts && quick.seconds < full.seconds);
        assert_eq!(full.levels, vec![1, 8, 32, 64]);
        assert_eq!(Plan::of(Profile::Full).with(&Overrides::default()), full);
    }
}
