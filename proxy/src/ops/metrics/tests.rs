use super::*;

#[test]
fn every_worker_labels_its_samples() {
    let m = Metrics::new(3);
    m.rejections
        .with_label_values(&["ParseError", "envelope"])
        .inc();
    let text = m.render();
    assert!(
        text.contains(
            r#"mcpgate_rejections_total{filter="envelope",kind="ParseError",worker="3"} 1"#
        ),
        "{text}"
    );
}

#[test]
fn merged_exposition_keeps_each_family_together_with_every_worker() {
    let (a, b) = (Metrics::new(0), Metrics::new(1));
    a.rejections
        .with_label_values(&["ParseError", "envelope"])
        .inc();
    b.rejections
        .with_label_values(&["ParseError", "envelope"])
        .inc_by(2);
    a.request_duration
        .with_label_values(&["tools/call", "ok"])
        .observe(0.01);
    b.request_duration
        .with_label_values(&["tools/call", "ok"])
        .observe(0.02);
    let merged = merge_expositions(&[a.render(), b.render()]);
    let lines: Vec<&str> = merged.lines().collect();
    let type_lines = lines
        .iter()
        .filter(|l| l.starts_with("# TYPE mcpgate_rejections_total "))
        .count();
    assert_eq!(type_lines, 1, "{merged}");
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    let t = at("# TYPE mcpgate_rejections_total");
    let w0 = at(r#"mcpgate_rejections_total{filter="envelope",kind="ParseError",worker="0"} 1"#);
    let w1 = at(r#"mcpgate_rejections_total{filter="envelope",kind="ParseError",worker="1"} 2"#);
    assert!(t < w0 && t < w1);
    // No sample of another family sits between one family's samples.
    for l in &lines[t + 1..w0.max(w1)] {
        assert!(l.starts_with("mcpgate_rejections_total"), "{l}");
    }
    // Histograms: buckets, sum and count of both workers under one TYPE.
    let h = at("# TYPE mcpgate_request_duration_seconds histogram");
    let counts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("mcpgate_request_duration_seconds_count"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|&i| i > h));
}

#[test]
fn labels_cannot_be_grown_by_clients() {
    assert_eq!(method_label("tools/call"), "tools/call");
    assert_eq!(method_label("x/made-up-by-a-client"), "other");
    assert_eq!(outcome_label(200), "ok");
    assert_eq!(outcome_label(400), "refused");
    assert_eq!(outcome_label(502), "upstream_error");
}
