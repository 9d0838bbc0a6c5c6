use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcpgate-handover-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn local() -> SocketAddr {
    // A port of its own: bound, noted, released.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn each_worker_gets_its_own_share_of_the_sockets() {
    let addr = local();
    let dir = scratch("share");
    let listeners = Arc::new(Listeners::bind(addr, 3, Vec::new()).unwrap());
    listeners.clone().serve(&dir.join(SOCKET), 3).unwrap();
    let mut inodes = std::collections::HashSet::new();
    for i in 0..3 {
        let mine = ask_supervisor(&dir, i).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].local_addr().unwrap(), addr);
        let st = rustix::fs::fstat(&mine[0]).unwrap();
        assert!(inodes.insert(st.st_ino), "worker {i} got another's socket");
    }
    // Asked again (a restarted worker): the same socket, not a new one.
    let again = rustix::fs::fstat(&ask_supervisor(&dir, 1).unwrap()[0]).unwrap();
    assert!(inodes.contains(&again.st_ino));
    assert!(ask_supervisor(&dir, 3).is_err(), "there is no worker 3");
    // Closed (the instance stops): nothing is handed over any more, and the
    // port refuses connections once the last copy is gone.
    listeners.close();
    assert!(ask_supervisor(&dir, 0).is_err());
    assert!(ask(&dir.join(SOCKET), "takeover").unwrap().is_empty());
    assert!(std::net::TcpStream::connect(addr).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_instance_taking_over_shares_the_queue_of_the_one_it_replaces() {
    let addr = local();
    let tmp = scratch("takeover");
    let old_dir = tmp.join("mcpgate-0123456789abcdef");
    std::fs::create_dir_all(&old_dir).unwrap();
    let old = Arc::new(Listeners::bind(addr, 2, Vec::new()).unwrap());
    old.clone().serve(&old_dir.join(SOCKET), 2).unwrap();
    // A second instance that already took over holds the same sockets: each
    // is taken once.
    let middle_dir = tmp.join("mcpgate-fedcba9876543210");
    std::fs::create_dir_all(&middle_dir).unwrap();
    let middle = Arc::new(Listeners::bind(addr, 1, take_over(&tmp, addr)).unwrap());
    assert_eq!(middle.len(), 2);
    middle.clone().serve(&middle_dir.join(SOCKET), 1).unwrap();

    let taken = take_over(&tmp, addr);
    assert_eq!(taken.len(), 2, "both sockets, each once");
    // The same sockets, so the same queues: whatever the kernel queued for
    // the old instance is accepted through the sockets taken over.
    let clients: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut accepted = 0;
    for _ in 0..200 {
        for l in &taken {
            l.set_nonblocking(true).unwrap();
            while l.accept().is_ok() {
                accepted += 1;
            }
        }
        if accepted == clients.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(accepted, clients.len());
    // Another address is not taken.
    assert!(take_over(&tmp, local()).is_empty());
    let _ = std::fs::remove_dir_all(&tmp);
}
