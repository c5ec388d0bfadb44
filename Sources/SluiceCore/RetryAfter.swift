public import Foundation

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date, as seconds from `now`.
public enum RetryAfter {
    /// Seconds to wait (never negative), or nil when the value is neither form.
    public static func seconds(_ value: String, now: Date) -> Double? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if let s = Double(v), s >= 0, s.isFinite { return s }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let d = f.date(from: v) else { return nil }
        return max(0, d.timeIntervalSince(now))
    }
}
