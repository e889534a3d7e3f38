//! JSON Schemas of the events, generated from the Rust types. The files in
//! `schema/events/` are these schemas written out; a test keeps them fresh
//! (`AGORA_BLESS=1 cargo test -p agora-schema` rewrites them).

use schemars::{schema_for, Schema};

use crate::events::{Envelope, PointsAwarded, PostCreated, UserRegistered, UserRenamed};

/// (file name, schema) for every published event shape.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("Envelope.json", schema_for!(Envelope)),
        ("UserRegistered.v1.json", schema_for!(UserRegistered)),
        ("UserRenamed.v1.json", schema_for!(UserRenamed)),
        ("PostCreated.v1.json", schema_for!(PostCreated)),
        ("PointsAwarded.v1.json", schema_for!(PointsAwarded)),
    ]
}

/// A schema as it is written to its file: pretty JSON with a final newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_json_schemas_match_the_rust_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let bless = std::env::var_os("AGORA_BLESS").is_some();
        let mut stale = Vec::new();
        for (file, schema) in all() {
            let path = dir.join(file);
            let expected = render(&schema);
            if bless {
                std::fs::write(&path, &expected).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
                stale.push(file);
            }
        }
        assert!(stale.is_empty(), "stale JSON Schemas {stale:?}: run AGORA_BLESS=1 cargo test -p agora-schema");
    }
}
