//! Kafka topic names. One topic per aggregate type; the message key is the
//! aggregate id, so one aggregate's events stay in order on one partition.

/// UserRegistered, UserRenamed (aggregate: user).
pub const USER: &str = "agora.user.v1";
/// PostCreated (aggregate: post).
pub const POST: &str = "agora.post.v1";
/// PointsAwarded (aggregate: a user's points account).
pub const POINTS: &str = "agora.points.v1";
/// Events a consumer could not decode or apply, with the reason in headers.
pub const DEAD_LETTER: &str = "agora.deadletter.v1";

/// Every topic Agora publishes to, in the order they are usually created.
pub const ALL: [&str; 4] = [USER, POST, POINTS, DEAD_LETTER];

/// Partitions per topic when Agora creates the topics itself.
pub const DEFAULT_PARTITIONS: i32 = 4;
