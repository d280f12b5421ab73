//! Where a thread the GVL express lane kicked waits without Ruby's GVL (the
//! binding parks it there, `ext/killer/src/express.rs`). It leaves when the
//! core says the kicks are over, when its unblocking function wakes it (a
//! raise, a kill), or at its bound. Plain threads and clocks: no Ruby here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Parking {
    state: Mutex<State>,
    wake: Condvar,
    /// Whether kicks are coming: a thread kicked after the core said they
    /// were over does not park.
    kicking: AtomicBool,
    /// How many times the kicks were over (`State::overs`, readable
    /// without the lock).
    ends: AtomicU64,
}

struct State {
    /// How many times the kicks were over: a parked thread waits for it to
    /// change, so an end that came before it parked does not count.
    overs: u64,
    parked: usize,
}

impl Default for Parking {
    fn default() -> Self {
        Self::new()
    }
}

impl Parking {
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                overs: 0,
                parked: 0,
            }),
            wake: Condvar::new(),
            kicking: AtomicBool::new(false),
            ends: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kick is on its way.
    pub fn kicked(&self) {
        self.kicking.store(true, Relaxed);
    }

    /// Whether kicks are coming (none since the last end).
    pub fn kicking(&self) -> bool {
        self.kicking.load(Relaxed)
    }

    /// How many times the kicks were over: the same number before and
    /// after a park means no end came between.
    pub fn ends(&self) -> u64 {
        self.ends.load(Relaxed)
    }

    /// No stop is pending any more: every parked thread goes on.
    pub fn over(&self) {
        let mut state = self.state();
        self.kicking.store(false, Relaxed);
        state.overs += 1;
        self.ends.store(state.overs, Relaxed);
        drop(state);
        self.wake.notify_all();
    }

    /// Waits until the kicks are over, `woken` is set by [`Parking::unpark`],
    /// or `bound` has passed; at once if no kicks are coming.
    pub fn park(&self, bound: Duration, woken: &AtomicBool) {
        let until = Instant::now() + bound;
        let mut state = self.state();
        let parked_at = state.overs;
        state.parked += 1;
        while self.kicking.load(Relaxed) && state.overs == parked_at && !woken.load(Relaxed) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            state = self
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.parked -= 1;
    }

    /// Wakes the thread parked with `woken`, from another thread.
    pub fn unpark(&self, woken: &AtomicBool) {
        woken.store(true, Relaxed);
        // Under the lock: the parked thread is either before its look or
        // waiting, never between the two.
        drop(self.state());
        self.wake.notify_all();
    }

    /// How many threads are parked now.
    pub fn parked(&self) -> usize {
        self.state().parked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;

    const LONG: Duration = Duration::from_secs(60);

    /// Parks a thread for at most `bound`; the receiver hears when it left.
    fn park_one(
        parking: &Arc<Parking>,
        woken: &Arc<AtomicBool>,
        bound: Duration,
    ) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        let (parking, woken) = (parking.clone(), woken.clone());
        thread::spawn(move || {
            parking.park(bound, &woken);
            let _ = tx.send(());
        });
        rx
    }

    fn await_parked(parking: &Parking, n: usize) {
        let until = Instant::now() + Duration::from_secs(10);
        while parking.parked() != n {
            assert!(
                Instant::now() < until,
                "{} parked, not {n}",
                parking.parked()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn left(rx: &mpsc::Receiver<()>) -> bool {
        rx.recv_timeout(Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn the_end_of_the_kicks_wakes_every_parked_thread() {
        let parking = Arc::new(Parking::new());
        parking.kicked();
        let woken = [Arc::default(), Arc::default()];
        let rxs: Vec<_> = woken.iter().map(|w| park_one(&parking, w, LONG)).collect();
        await_parked(&parking, 2);
        assert!(parking.kicking());
        let ends = parking.ends();
        parking.over();
        assert_eq!(parking.ends(), ends + 1);
        assert!(!parking.kicking());
        assert!(
            rxs.iter().all(left),
            "a parked thread stayed for its 60 s bound"
        );
        assert_eq!(parking.parked(), 0);
    }

    #[test]
    fn unpark_wakes_its_thread_only() {
        let parking = Arc::new(Parking::new());
        parking.kicked();
        let (mine, other) = (Arc::default(), Arc::default());
        let rx_mine = park_one(&parking, &mine, LONG);
        let rx_other = park_one(&parking, &other, LONG);
        await_parked(&parking, 2);
        parking.unpark(&mine);
        assert!(left(&rx_mine));
        assert_eq!(parking.parked(), 1);
        assert!(rx_other.try_recv().is_err());
        parking.over();
        assert!(left(&rx_other));
    }

    #[test]
    fn no_park_once_the_kicks_are_over_and_a_past_end_does_not_count() {
        let parking = Arc::new(Parking::new());
        let woken = Arc::default();
        // Never kicked, then kicked and over: no wait either time.
        assert!(left(&park_one(&parking, &woken, LONG)));
        parking.kicked();
        parking.over();
        assert!(left(&park_one(&parking, &woken, LONG)));
        // Kicks again: a new park waits for the next end, not the last one.
        parking.kicked();
        let rx = park_one(&parking, &woken, LONG);
        await_parked(&parking, 1);
        assert!(rx.try_recv().is_err());
        parking.over();
        assert!(left(&rx));
    }

    #[test]
    fn the_bound_ends_a_park_while_kicks_go_on() {
        let parking = Arc::new(Parking::new());
        parking.kicked();
        let start = Instant::now();
        assert!(left(&park_one(
            &parking,
            &Arc::default(),
            Duration::from_millis(5)
        )));
        assert!(start.elapsed() >= Duration::from_millis(5));
    }
}
