//! Running out of file descriptors must not spin the event loop. This test
//! lowers the descriptor limit of its own process (it is alone in this test
//! binary for that reason), fills the table, and checks that the server
//! thread stays idle while connections wait in the backlog, then serves them
//! once descriptors are free again.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{read_response, TestServer};

fn set_soft_fd_limit(n: u64) {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn a_full_descriptor_table_pauses_accepting_instead_of_spinning() {
    let srv = TestServer::default();
    // Room for a few dozen more descriptors in the whole process.
    set_soft_fd_limit(open_fds() + 40);
    // Each connection costs two descriptors here (client end, server end);
    // connect until the process runs out, so the last connections wait in
    // the listener's backlog with no descriptor left for accept().
    let mut clients: Vec<TcpStream> = Vec::new();
    loop {
        match TcpStream::connect(srv.addr) {
            Ok(s) => clients.push(s),
            Err(_) => break, // EMFILE on our side: the table is full
        }
        if clients.len() > 200 {
            panic!("the descriptor limit did not take effect");
        }
    }
    // Free exactly one descriptor for a last client whose connection the
    // server cannot accept.
    drop(clients.pop());
    let waiting = TcpStream::connect(srv.addr).expect("one more connect");
    std::thread::sleep(Duration::from_millis(100));
    let before = srv.cpu_time();
    std::thread::sleep(Duration::from_millis(600));
    let used = srv.cpu_time() - before;
    // A spinning loop would burn most of the 600 ms; retrying accept every
    // 100 ms costs next to nothing.
    assert!(
        used < Duration::from_millis(60),
        "server thread used {used:?} of CPU while out of descriptors"
    );

    // Free descriptors: the waiting connection is accepted and served.
    drop(clients);
    set_soft_fd_limit(65_536);
    let mut w = waiting.try_clone().unwrap();
    w.set_read_timeout(Some(common::io_timeout())).unwrap();
    w.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let stats = read_response(&mut BufReader::new(waiting)).json();
    assert!(stats["accept_errors"].as_u64().unwrap() >= 1, "{stats}");
}
