//! Child processes that never outlive their parent.
//!
//! Every child a run starts (the customers, the `processes` model's
//! workers) must end within a second of its parent's death, however the
//! parent dies, `kill -9` included. On Linux the kernel does it: the child
//! asks for a parent-death signal (`PR_SET_PDEATHSIG`) before it runs.
//! Elsewhere a child watches a pipe from its parent (its stdin) and leaves
//! when the pipe reaches end-of-file; every child here reads its stdin.
//!
//! On Linux such a child is also put in a process group of its own. A
//! terminal's Ctrl-C (SIGINT) and a `kill -- -PGID` reach the whole
//! foreground group: a child in it would die of the signal (a cook, the
//! model's own redis-server) while its parent was still finishing the
//! orders in, and those orders would be lost. In a group of its own only
//! its parent speaks to it, and the parent-death signal still ends it
//! however the parent ends, so killing the parent's group (what `compare`
//! and the conformance kit do to a run that outlasts its limit) still
//! ends the whole tree. Elsewhere nothing would kill a child that watches
//! no pipe (a redis-server) with its parent but a signal to the parent's
//! group, so there it stays in that group, Ctrl-C included.

use std::process::Command;

/// Makes the child that `command` starts receive SIGKILL when the thread
/// that started it ends, and puts it in a process group of its own, out
/// of reach of the terminal's signals (both on Linux only: see the module
/// header). Start children from a thread that lives as long as the run,
/// such as the main thread: the kernel ties the signal to the parent
/// *thread*.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // Group 0: a new group, its id the child's pid.
        command.process_group(0);
        let parent = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec,
        // where only async-signal-safe calls are allowed: prctl(2) and
        // getppid(2) are, and nothing here allocates or takes a lock.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::SIGKILL)?;
                // The parent may have died before the prctl: then nobody
                // would send the signal, so do not start at all.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(
                        nix::errno::Errno::ESRCH as i32,
                    ));
                }
                Ok(())
            });
        }
    }
    command
}
