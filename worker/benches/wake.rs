//! How late the scheduler's wake-up fires after its deadline: the timerfd
//! [`Wake`] against tokio's own timer, over sleeps of the length a
//! scheduler sees between arrivals. This is the figure behind the claim in
//! `engine/timer.rs` (microseconds, against tokio's 0–2 ms); the unit test
//! there checks only that it never wakes early.
//!
//! `cargo bench -p volley-worker --bench wake` prints, per timer and sleep
//! length, the lateness percentiles over 2,000 sleeps.

use std::time::Duration;
use tokio::time::Instant;
use volley_worker::engine::timer::Wake;

const SLEEPS: usize = 2_000;

fn percentiles(mut late: Vec<Duration>) -> String {
    late.sort();
    let at = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:>8.1?}  p90 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this only checks that it runs.
    let sleeps = if std::env::args().any(|a| a == "--bench") {
        SLEEPS
    } else {
        20
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        for micros in [100u64, 700, 5_000] {
            let sleep = Duration::from_micros(micros);
            let mut w = Wake::new();
            let mut wake = Vec::with_capacity(sleeps);
            let mut tokio_timer = Vec::with_capacity(sleeps);
            for _ in 0..sleeps {
                let deadline = Instant::now() + sleep;
                w.until(deadline).await;
                wake.push(Instant::now() - deadline);
                let deadline = Instant::now() + sleep;
                tokio::time::sleep_until(deadline).await;
                tokio_timer.push(Instant::now() - deadline);
            }
            println!("sleep {sleep:>7?}  Wake   lateness  {}", percentiles(wake));
            println!(
                "sleep {sleep:>7?}  tokio  lateness  {}",
                percentiles(tokio_timer)
            );
        }
    });
}
