//! Connections per address: every gRPC and SSH connection from one IP counts
//! against `server.max_connections_per_address`, so that one host cannot
//! take all of a public server's sockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct AddressLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct AddressSlot {
    limiter: AddressLimiter,
    ip: IpAddr,
}

impl AddressLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `ip`, or `None` when it has `max` open.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_slots_back() {
        let limiter = AddressLimiter::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = limiter.admit(ip).expect("first");
        let _b = limiter.admit(ip).expect("second");
        assert!(limiter.admit(ip).is_none(), "third refused");
        assert!(
            limiter.admit(other).is_some(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(
            limiter.admit(ip).is_some(),
            "a closed connection frees its slot"
        );
    }
}
