//! Errno names as case files write them (`"ENOPROTOOPT"`), and back (Linux numbers).

const TABLE: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("E2BIG", 7),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("ENODEV", 19),
    ("EINVAL", 22),
    ("ENOSPC", 28),
    ("ERANGE", 34),
    ("ENOTSUP", 95),
    ("EMSGSIZE", 90),
    ("EPROTOTYPE", 91),
    ("ENOPROTOOPT", 92),
    ("EPROTONOSUPPORT", 93),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETDOWN", 100),
    ("ENETUNREACH", 101),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOBUFS", 105),
    ("EISCONN", 106),
    ("ENOTCONN", 107),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
];

/// The number of an errno name (`"EEXIST"` -> 17).
pub fn by_name(name: &str) -> Option<i32> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of an errno number (17 -> `"EEXIST"`); 95 is reported as `EOPNOTSUPP`.
pub fn name(errno: i32) -> Option<&'static str> {
    TABLE.iter().rev().find(|(_, v)| *v == errno).map(|(n, _)| *n)
}

/// A printable errno: `EEXIST (17)`, or `errno 4242` for an unknown number.
pub fn describe(errno: i32) -> String {
    match name(errno) {
        Some(n) => format!("{n} ({errno})"),
        None => format!("errno {errno}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_ways() {
        assert_eq!(super::by_name("ENOPROTOOPT"), Some(92));
        assert_eq!(super::name(17), Some("EEXIST"));
        assert_eq!(super::name(95), Some("EOPNOTSUPP"));
        assert_eq!(super::describe(111), "ECONNREFUSED (111)");
        assert_eq!(super::describe(4242), "errno 4242");
        assert_eq!(super::by_name("ENOPE"), None);
    }
}
