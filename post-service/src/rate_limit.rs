//! post-service's budget: how many posts one author may publish per hour.
//! Each post earns points, so an unbounded `createPost` is points farming
//! (and a flood of rows and events).

use agora_platform::budget::{Budget, RetryAfter};
use uuid::Uuid;

pub struct PostBudget(Budget<Uuid>);

impl PostBudget {
    /// `per_hour` posts per author (0: no limit).
    pub fn per_hour(per_hour: u32) -> Self {
        PostBudget(Budget::per_hour(per_hour))
    }

    /// Counts a post by `author`, or says when the next one is allowed.
    pub fn spend(&self, author: Uuid) -> Result<(), RetryAfter> {
        self.0.spend(&author)
    }
}
