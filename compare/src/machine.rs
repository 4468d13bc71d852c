//! The machine a comparison ran on, and the date, for the book.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Facts about this machine, each as a short line.
pub fn describe() -> Vec<(&'static str, String)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut facts = vec![
        ("CPU", cpu_model().unwrap_or_else(|| "unknown".to_owned())),
        ("cores", cores.to_string()),
    ];
    if let Some(memory) = memory() {
        facts.push(("memory", memory));
    }
    facts.push((
        "OS",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    ));
    if let Some(rustc) = rustc() {
        facts.push(("compiler", rustc));
    }
    facts.push(("date", today()));
    facts
}

/// The numbers of Linux's network stack that a server meets here, each
/// with where it comes from; empty off Linux.
pub fn network() -> Vec<(&'static str, String)> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" – "))
    };
    let mut facts = Vec::new();
    for (what, path) in [
        (
            "listen backlog cap (`net.core.somaxconn`)",
            "/proc/sys/net/core/somaxconn",
        ),
        (
            "half-open connections queued (`net.ipv4.tcp_max_syn_backlog`)",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog",
        ),
        (
            "SYN retries before connect gives up (`net.ipv4.tcp_syn_retries`)",
            "/proc/sys/net/ipv4/tcp_syn_retries",
        ),
        (
            "ephemeral ports (`net.ipv4.ip_local_port_range`)",
            "/proc/sys/net/ipv4/ip_local_port_range",
        ),
        (
            "TIME_WAIT reuse for new connects (`net.ipv4.tcp_tw_reuse`)",
            "/proc/sys/net/ipv4/tcp_tw_reuse",
        ),
        (
            "open files, system-wide (`fs.file-max`)",
            "/proc/sys/fs/file-max",
        ),
    ] {
        if let Some(value) = read(path) {
            facts.push((what, value));
        }
    }
    let limits =
        std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    if let Some(words) = open_files
        && words.len() >= 5
    {
        facts.push((
            "open files per process, soft – hard (`ulimit -n`; every \
             example raises its soft limit to the hard one)",
            format!("{} – {}", words[3], words[4]),
        ));
    }
    facts
}

/// One line: CPU, cores, OS.
pub fn short() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{}, {cores} cores, {} {}",
        cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn memory() -> Option<String> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} GiB", kib / (1024.0 * 1024.0)))
}

fn rustc() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_plausible_date() {
        let date = super::today();
        assert_eq!(date.len(), 10, "{date}");
        let year: i32 = date[..4].parse().unwrap();
        assert!(year >= 2024, "{date}");
        let month: u32 = date[5..7].parse().unwrap();
        assert!((1..=12).contains(&month), "{date}");
    }
}
