//! Entry point of the `policy` fuzz target and its corpus replay. Not part of
//! the public API.

/// Policy loader: any text either compiles or yields errors that each point
/// into the file (line and column from 1, no later than the text's end).
pub fn policy(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = crate::parse_policy("fuzz.toml", src) {
        let lines = src.split('\n').count().max(1);
        assert!(!errors.0.is_empty(), "an error result without errors");
        for e in &errors.0 {
            assert!(e.line >= 1 && e.column >= 1, "position from 1: {e:?}");
            assert!(
                e.line <= lines + 1,
                "line {} past the end ({lines})",
                e.line
            );
        }
    }
}
