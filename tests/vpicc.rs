//! A firmalab card behind the `vpicc` crate (feature `vpicc`, part of `pcsc`): the card as a
//! `vpicc::VSmartCard` on a `vpicc::Connection` whose socket the test owns, first against a
//! vpcd stand-in (no stack needed), then in a private pcscd, where unmodified OpenSC names
//! it and lists its certificates; and `vpicc_card::serve`, the runner that adds firmalab's
//! guarantees around `vpicc::Connection` (save before answer, rollback, reconnect, stop within
//! a second even mid-frame).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(not(feature = "vpicc"))]
#[test]
fn vpicc_tests_need_the_vpicc_feature() {
    use std::io::Write;
    let why = "built without `--features vpicc` (or `pcsc`, which includes it)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the vpicc tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED vpicc tests: {why}");
}

#[cfg(all(feature = "vpicc", not(feature = "pcsc")))]
#[test]
fn vpicc_through_pcscd_needs_the_pcsc_feature() {
    use std::io::Write;
    let why = "built without `--features pcsc` (needs libpcsclite-dev and pkg-config)";
    if std::env::var("FIRMALAB_PCSC_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("the PC/SC stack is required (FIRMALAB_PCSC_REQUIRED=1) but the tests were {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED vpicc through pcscd and OpenSC: {why}");
}

/// What the tests share: fixtures, hex, the `vpicc` loop a user writes (pcsc.md §3).
#[cfg(feature = "vpicc")]
mod common {
    use firmalab_emulator::vpcd::HostedCard;
    use firmalab_emulator::{Card, CardImage, CardRng};
    use socket2::SockRef;
    use std::net::{Shutdown, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    pub fn h(s: &str) -> Vec<u8> {
        firmalab_emulator::hex::decode(s).unwrap()
    }

    pub fn fixture(name: &str) -> CardImage {
        CardImage::load(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards").join(name))
            .unwrap()
    }

    pub fn ephemeral(name: &str) -> HostedCard {
        HostedCard::ephemeral(Card::new(fixture(name), CardRng::insecure_deterministic(5)))
    }

    pub fn tries(host: &HostedCard, label: &str) -> u8 {
        host.card.image().pins.iter().find(|p| p.label == label).unwrap().tries_left
    }

    /// Runs `f` in a thread that notes the instant it returned.
    pub fn spawn_timed<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<(T, Instant)> {
        std::thread::spawn(move || {
            let out = f();
            (out, Instant::now())
        })
    }

    /// The stop promise: a card thread asked to stop at `asked` has returned within a second.
    /// Measured by the instant the card thread itself noted on returning, so the time this
    /// test thread spends descheduled on a busy machine is not counted against the card; a
    /// card that never returns fails after 30 s instead of hanging the suite.
    pub fn stopped_within_a_second<T>(asked: Instant, thread: JoinHandle<(T, Instant)>) -> T {
        let hang = asked + Duration::from_secs(30);
        while !thread.is_finished() {
            assert!(Instant::now() < hang, "the card did not stop at all (30 s after the request)");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (out, returned) = thread.join().unwrap();
        let took = returned.saturating_duration_since(asked);
        assert!(took < Duration::from_secs(1), "the card did not stop within a second: it took {took:?}");
        out
    }

    /// A card run the way vpicc users run theirs: a socket the test connects, handed to
    /// `vpicc::Connection`, TCP_QUICKACK re-armed before each `poll`.
    pub struct ByVpicc {
        stop: Arc<AtomicBool>,
        side: TcpStream,
        thread: Option<JoinHandle<HostedCard>>,
    }

    impl ByVpicc {
        pub fn start(addr: &str, mut host: HostedCard) -> ByVpicc {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            let side = stream.try_clone().unwrap();
            let quickack = stream.try_clone().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut connection = vpicc::Connection::from(stream);
                loop {
                    // Re-armed before every message: once is not enough (pcsc.md §3, §4).
                    SockRef::from(&quickack).set_tcp_quickack(true).unwrap();
                    let polled = connection.poll(&mut host);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    polled.unwrap();
                }
                host
            });
            ByVpicc { stop, side, thread: Some(thread) }
        }

        /// Stops the card (shutting the socket wakes `poll`) and returns it.
        pub fn stop(mut self) -> HostedCard {
            self.take()
        }

        fn take(&mut self) -> HostedCard {
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.side.shutdown(Shutdown::Both);
            self.thread.take().unwrap().join().expect("card thread")
        }
    }

    impl Drop for ByVpicc {
        fn drop(&mut self) {
            if self.thread.is_some() && !std::thread::panicking() {
                self.take();
            }
        }
    }
}

/// Against a vpcd stand-in: a listener the test owns speaks vpcd's side of the protocol.
#[cfg(feature = "vpicc")]
mod without_stack {
    use super::common::*;
    use firmalab_emulator::vpcd::{Event, HostedCard, ImageStore, Options};
    use firmalab_emulator::vpicc_card;
    use firmalab_emulator::{Card, CardImage, CardRng};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    const PIN: &str = "3132333435363738"; // 12345678
    const NEW: &str = "3837363534333231"; // 87654321
    const WRONG: &str = "3131313131313131";

    fn fake_vpcd() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        (l, addr)
    }

    fn send(vpcd: &mut TcpStream, payload: &[u8]) {
        let mut frame = (payload.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        vpcd.write_all(&frame).unwrap();
    }

    fn recv(vpcd: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        vpcd.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        vpcd.read_exact(&mut msg).unwrap();
        msg
    }

    /// vpcd's side of one APDU exchange.
    fn apdu(vpcd: &mut TcpStream, command: &str) -> String {
        send(vpcd, &h(command));
        firmalab_emulator::hex::encode(&recv(vpcd)).to_uppercase()
    }

    #[test]
    fn vpicc_connection_runs_the_card_power_reset_atr_and_apdus_reach_it() {
        let (listener, addr) = fake_vpcd();
        let card = ByVpicc::start(&addr, ephemeral("cns-renewable.json"));
        let (mut vpcd, _) = listener.accept().unwrap();
        send(&mut vpcd, &[0x01]); // power on
        send(&mut vpcd, &[0x04]);
        assert_eq!(recv(&mut vpcd), fixture("cns-renewable.json").atr.0, "the card's own ATR");
        assert_eq!(apdu(&mut vpcd, "00A4000C023F00"), "9000");
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{WRONG}")), "63C2");
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{PIN}")), "9000");
        assert_eq!(apdu(&mut vpcd, "00200090"), "9000", "verified");
        send(&mut vpcd, &[0x02]); // reset
        assert_eq!(apdu(&mut vpcd, "00200090"), "63C3", "a reset clears the security state");
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{PIN}")), "9000");
        send(&mut vpcd, &[0x00]); // power off
        send(&mut vpcd, &[0x01]); // power on
        assert_eq!(apdu(&mut vpcd, "00200090"), "63C3", "so does a power cycle");
        let host = card.stop();
        assert_eq!(tries(&host, "PIN CNS0"), 3, "the right PIN restored the counter");
    }

    /// A store that waits for the test's go before it saves, and can fail.
    struct Gate {
        go: Receiver<()>,
        started: Sender<()>,
        fail: Arc<AtomicBool>,
        saved: Arc<Mutex<Vec<CardImage>>>,
    }

    impl ImageStore for Gate {
        fn save(&mut self, image: &CardImage) -> Result<(), String> {
            let _ = self.started.send(());
            self.go.recv().map_err(|e| e.to_string())?;
            if self.fail.load(Ordering::Relaxed) {
                return Err("injected: no space left on device".into());
            }
            self.saved.lock().unwrap().push(image.clone());
            Ok(())
        }
    }

    struct Served {
        stop: Arc<AtomicBool>,
        thread: JoinHandle<((std::io::Result<()>, HostedCard), Instant)>,
        events: Arc<Mutex<Vec<String>>>,
    }

    /// Runs `host` with `vpicc_card::serve` on `addr`, recording its events.
    fn serve(addr: String, mut host: HostedCard) -> Served {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(vec![]));
        let (flag, record) = (stop.clone(), events.clone());
        let thread = spawn_timed(move || {
            let mut log = |e: Event<'_>| record.lock().unwrap().push(format!("{e:?}"));
            let r = vpicc_card::serve(&mut host, &addr, Options::default(), &flag, &mut log);
            (r, host)
        });
        Served { stop, thread, events }
    }

    impl Served {
        fn stops_within_a_second(self) -> HostedCard {
            let asked = Instant::now();
            self.stop.store(true, Ordering::Relaxed);
            let (r, host) = stopped_within_a_second(asked, self.thread);
            r.unwrap();
            host
        }
    }

    #[test]
    fn vpicc_runner_save_rule_the_answer_waits_for_the_save_and_a_failed_one_answers_6581_rolled_back() {
        let (go, gate) = channel();
        let (started_tx, started) = channel();
        let fail = Arc::new(AtomicBool::new(false));
        let saved = Arc::new(Mutex::new(vec![]));
        let store = Gate { go: gate, started: started_tx, fail: fail.clone(), saved: saved.clone() };
        let host = HostedCard::persisted(
            Card::new(fixture("cns-renewable.json"), CardRng::insecure_deterministic(9)),
            Box::new(store),
        );
        let (listener, addr) = fake_vpcd();
        let served = serve(addr, host);
        let (mut vpcd, _) = listener.accept().unwrap();
        send(&mut vpcd, &[0x01]);

        // A wrong PIN changes the card (3 → 2 tries): no answer until the image is saved.
        send(&mut vpcd, &h(&format!("0020009008{WRONG}")));
        started.recv_timeout(Duration::from_secs(5)).expect("the card saves");
        vpcd.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut early = [0u8; 1];
        let e = vpcd.read(&mut early).expect_err("an answer went out before the save finished");
        assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}");
        vpcd.set_read_timeout(None).unwrap();
        go.send(()).unwrap();
        assert_eq!(firmalab_emulator::hex::encode(&recv(&mut vpcd)).to_uppercase(), "63C2");
        assert_eq!(saved.lock().unwrap().len(), 1);

        // The disk is full: CHANGE REFERENCE DATA answers 6581 and the card is rolled back.
        fail.store(true, Ordering::Relaxed);
        go.send(()).unwrap();
        assert_eq!(apdu(&mut vpcd, &format!("0024009010{PIN}{NEW}")), "6581");
        fail.store(false, Ordering::Relaxed);
        go.send(()).unwrap();
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{NEW}")), "63C1", "the new PIN never took");
        go.send(()).unwrap();
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{PIN}")), "9000", "the old one is in force");

        let events = served.events.clone();
        let host = served.stops_within_a_second();
        assert_eq!(tries(&host, "PIN CNS0"), 3);
        let events = events.lock().unwrap();
        assert!(events.iter().any(|e| e.starts_with("SaveFailed") && e.contains("injected")), "{events:?}");
        assert!(events.iter().all(|e| !e.contains(PIN) && !e.contains(NEW)), "no PIN in the log: {events:?}");
        assert!(
            events.iter().any(|e| e.contains("0024009010********************************")),
            "redacted command logged: {events:?}"
        );
    }

    #[test]
    fn vpicc_runner_stop_rule_within_a_second_when_vpcd_is_silent_or_sent_half_a_frame() {
        for partial in [&[][..], &[0x00u8][..], &[0x00, 0x05, 0x00, 0xA4][..]] {
            let (listener, addr) = fake_vpcd();
            let served = serve(addr, ephemeral("cns-renewable.json"));
            let (mut vpcd, _) = listener.accept().unwrap();
            send(&mut vpcd, &[0x04]);
            assert_eq!(recv(&mut vpcd), fixture("cns-renewable.json").atr.0);
            vpcd.write_all(partial).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            served.stops_within_a_second();
        }
    }

    #[test]
    fn vpicc_runner_stop_rule_within_a_second_while_waiting_for_vpcd() {
        // Bound without SO_REUSEADDR and never listening: nothing can listen there while it
        // lives. A listener dropped at once would free its port for another test's
        // `fake_vpcd`, which would then accept this card instead of its own.
        let silent = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        silent.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let addr = silent.local_addr().unwrap().as_socket().unwrap().to_string();
        let served = serve(addr, ephemeral("cns-renewable.json"));
        std::thread::sleep(Duration::from_millis(300));
        served.stops_within_a_second();
    }

    #[test]
    fn vpicc_runner_reconnects_after_vpcd_goes_away_waiting_over_a_second_and_the_card_keeps_its_state() {
        let (listener, addr) = fake_vpcd();
        let served = serve(addr, ephemeral("cns-renewable.json"));
        let (mut vpcd, _) = listener.accept().unwrap();
        send(&mut vpcd, &[0x01]);
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{WRONG}")), "63C2");
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{PIN}")), "9000");
        // Taken before the close: the card cannot see the connection go any earlier, and the
        // test thread may be descheduled for a while right after it.
        let gone = Instant::now();
        drop(vpcd); // pcscd went away
        let (mut vpcd, _) = listener.accept().unwrap();
        assert!(gone.elapsed() >= Duration::from_secs(1), "reconnected after {:?}: too soon", gone.elapsed());
        send(&mut vpcd, &[0x01]);
        assert_eq!(apdu(&mut vpcd, "00200090"), "63C3", "removed and reinserted: verified state gone");
        assert_eq!(apdu(&mut vpcd, &format!("0020009008{WRONG}")), "63C2", "the same card, counter persistent");
        let events = served.events.clone();
        served.stops_within_a_second();
        let events = events.lock().unwrap();
        assert_eq!(events.iter().filter(|e| e.starts_with("Connected")).count(), 2, "{events:?}");
        assert!(events.iter().any(|e| e.starts_with("Disconnected")), "{events:?}");
    }
}

#[cfg(feature = "pcsc")]
mod support;

/// Through a private pcscd, with unmodified OpenSC as the client.
#[cfg(feature = "pcsc")]
mod with_stack {
    use super::common::*;
    use super::support::{self, client, firmalab, text};
    use firmalab_emulator::vpcd::{Event, HostedCard, Options};
    use firmalab_emulator::{CardImage, CardRng, vpicc_card};
    use firmalab_harness::stack::PrivateStack;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn wait_present(stack: &PrivateStack, slot: u8) {
        let reader = PrivateStack::reader(slot);
        let o = firmalab(stack, &["readers", "--wait", &reader, "--timeout", "15"]);
        assert!(o.status.success(), "card never appeared in {reader}: {}\npcscd log:\n{}", text(&o), stack.log());
    }

    #[test]
    fn opensc_names_and_lists_certificates_of_cards_run_by_a_vpicc_connection_in_pcscd() {
        let test = "opensc_names_and_lists_certificates_of_cards_run_by_a_vpicc_connection_in_pcscd";
        let Some((stack, _turn)) = support::stack(test) else {
            return;
        };
        // Both readers at once, each card on its own vpicc::Connection (the only test in this
        // binary on the shared stack, so no reader is reused too soon: pcsc.md §3 bug 6).
        let cns = ByVpicc::start(&stack.vpcd_addr(0), ephemeral("cns-renewable.json"));
        let oberthur = ByVpicc::start(&stack.vpcd_addr(1), ephemeral("oberthur-renewable.json"));
        wait_present(stack, 0);
        wait_present(stack, 1);

        let o = client(stack, "opensc-tool", &["-r", "0", "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "CNS card", "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", "0", "--list-certificates"]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains("X.509 Certificate [CNS0]") && t.contains("X.509 Certificate [CNS1]"), "{t}");
        assert!(t.contains("Path           : 3f0014009010"), "{t}");

        let o = client(stack, "opensc-tool", &["-r", "1", "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "AuthentIC v5", "{}", text(&o));
        let o = client(stack, "pkcs15-tool", &["-r", "1", "--list-certificates"]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            t.contains("Path           : 3f00501190012001") && t.contains("Path           : 3f00501190012002"),
            "{t}"
        );

        // A wrong PIN through OpenSC reaches the card behind vpicc and costs a try.
        let o = client(stack, "opensc-tool", &["-r", "0", "-s", "00200090083131313131313131"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "{}", text(&o));
        let host = cns.stop();
        assert_eq!(tries(&host, "PIN CNS0"), 2);
        oberthur.stop();
    }

    #[test]
    fn vpicc_runner_in_pcscd_saves_before_answering_survives_a_pcscd_restart_and_stops_within_a_second() {
        let test = "vpicc_runner_in_pcscd_saves_before_answering_survives_a_pcscd_restart_and_stops_within_a_second";
        let Some((_shared, _turn)) = support::stack(test) else {
            return;
        };
        // Its own pcscd, so it can be restarted.
        let first = PrivateStack::start().expect("private pcscd");
        let dir = support::scratch("vpicc-runner");
        let img = dir.join("card.json");
        std::fs::copy(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/cards/cns-renewable.json"),
            &img,
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::<String>::new()));
        let thread = {
            let (addr, flag, record, img) = (first.vpcd_addr(0), stop.clone(), events.clone(), img.clone());
            spawn_timed(move || {
                let mut host = HostedCard::open(&img, CardRng::insecure_deterministic(3)).unwrap();
                let mut log = |e: Event<'_>| record.lock().unwrap().push(format!("{e:?}"));
                vpicc_card::serve(&mut host, &addr, Options::default(), &flag, &mut log)
            })
        };
        wait_present(&first, 0);
        let o = client(&first, "opensc-tool", &["-r", "0", "-n"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "CNS card", "{}", text(&o));
        let o = client(&first, "opensc-tool", &["-r", "0", "-s", "00200090083131313131313131"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "{}", text(&o));
        // The answered 63C2 is already on disk.
        assert_eq!(CardImage::load(&img).unwrap().pins[0].tries_left, 2);

        first.stop();
        let second = PrivateStack::start_on(first.port).expect("pcscd restarted on the same port");
        wait_present(&second, 0);
        let o = client(&second, "opensc-tool", &["-r", "0", "-s", "00200090"]);
        assert!(text(&o).contains("SW1=0x63, SW2=0xC2"), "the same card came back: {}", text(&o));

        let asked = Instant::now();
        stop.store(true, Ordering::Relaxed);
        stopped_within_a_second(asked, thread).unwrap();
        second.stop();
        let events = events.lock().unwrap();
        assert!(events.iter().any(|e| e.starts_with("Disconnected")), "it saw pcscd go: {events:?}");
        assert!(events.iter().filter(|e| e.starts_with("Connected")).count() >= 2, "{events:?}");
    }
}
