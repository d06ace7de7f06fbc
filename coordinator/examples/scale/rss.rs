//! The coordinator's memory over a (time-compressed) run: `--rss-every`
//! points and their slope, for `bench/day.sh`.

/// The coordinator's memory after some seconds of run.
#[derive(Debug, Clone, Copy)]
pub struct RssPoint {
    /// Seconds of the run published.
    pub run_s: u32,
    /// MiB.
    pub rss: f64,
    pub anon: f64,
}

/// The coordinator's RSS over the run: the points, then the least-squares
/// slope of the anonymous RSS from the second point on (the first interval
/// is the warm-up: the hour of events kept for clients that attach again
/// fills during the first hour), in KB per hour of run and MB per day.
pub fn print_rss_slope(points: &[RssPoint], every: u32) {
    println!();
    println!("| seconds of run | coord RSS MiB | anonymous MiB |");
    println!("| ---: | ---: | ---: |");
    for p in points {
        println!("| {} | {:.1} | {:.1} |", p.run_s, p.rss, p.anon);
    }
    let fit: Vec<(f64, f64)> = points
        .iter()
        .skip(1)
        .map(|p| (f64::from(p.run_s) / 3600.0, p.anon * 1024.0))
        .collect();
    if fit.len() < 2 {
        println!(
            "slope: too few points after the first (need a run longer than 3 × --rss-every = {} s)",
            3 * every
        );
        return;
    }
    let n = fit.len() as f64;
    let (mx, my) = (
        fit.iter().map(|p| p.0).sum::<f64>() / n,
        fit.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = fit.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = fit.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let kb_per_h = sxy / sxx;
    let (first, last) = (fit[0], fit[fit.len() - 1]);
    println!(
        "coordinator anonymous RSS after the first {every} s of run: {:.1} → {:.1} MiB over {:.1} h of run; \
         least-squares slope {kb_per_h:+.0} KB per hour of run ({:+.1} MB per day)",
        first.1 / 1024.0,
        last.1 / 1024.0,
        last.0 - first.0,
        kb_per_h * 24.0 / 1000.0
    );
}
