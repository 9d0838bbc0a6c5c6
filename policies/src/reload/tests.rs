use super::*;
use crate::testutil::ok;

#[test]
fn an_unchanged_file_names_nothing() {
    let src = "[listen]\naddress = \"127.0.0.1:9000\"\n[admission]\nglobal_max_in_flight = 10\n";
    let running = ok(src);
    let mut next = ok(src);
    assert!(keep_restart_only(&running, &mut next).is_empty());
}

#[test]
fn restart_only_keys_are_named_and_keep_their_running_value() {
    let running = ok("[listen]\naddress = \"127.0.0.1:9000\"\nthreads = 2\n");
    let mut next = ok("[listen]\naddress = \"127.0.0.1:9100\"\nthreads = 4\n\
         [admin]\naddress = \"127.0.0.1:9101\"\n\
         [audit]\npath = \"/tmp/a.jsonl\"\n");
    let changed = keep_restart_only(&running, &mut next);
    assert_eq!(
        changed,
        vec!["listen.address", "listen.threads", "admin", "audit"]
    );
    assert_eq!(next.listen.address, running.listen.address);
    assert_eq!(next.listen.threads, 2);
    assert!(next.admin.is_none());
    assert!(next.audit.is_none());
}

#[test]
fn reloadable_keys_change_and_are_not_named() {
    let running = ok("[admission]\nglobal_max_in_flight = 10\n");
    let mut next = ok("[admission]\nglobal_max_in_flight = 3\n[listen]\npath = \"/other\"\n");
    assert!(keep_restart_only(&running, &mut next).is_empty());
    assert_eq!(next.admission.global_max_in_flight, 3);
    assert_eq!(next.listen.path, "/other");
}
