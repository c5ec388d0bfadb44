/// Parsing of text fields into typed values, straight from bytes (no `String` on the hot
/// path). Every function returns nil (or a reason) instead of trapping on bad input.
public enum Coercion {
    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    /// The bytes without leading and trailing spaces and tabs.
    @inlinable public static func trimmed(_ b: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var s = 0, e = b.count
        while s < e, b[s] == 0x20 || b[s] == 0x09 { s += 1 }
        while e > s, b[e - 1] == 0x20 || b[e - 1] == 0x09 { e -= 1 }
        if s == 0 && e == b.count { return b }
        return UnsafeRawBufferPointer(rebasing: b[s..<e])
    }

    // MARK: Integers

    /// Decimal integer with optional sign; `12.0` and `12.` are accepted (no digits lost).
    public static func parseInt64(_ raw: UnsafeRawBufferPointer) -> Int64? {
        let b = trimmed(raw)
        let n = b.count
        if n == 0 { return nil }
        var i = 0
        let neg = readSign(b, &i)
        if i == n { return nil }
        var acc: UInt64 = 0
        var digits = 0
        while i < n {
            let d = b[i] &- 48
            if d > 9 { break }
            let (m, o1) = acc.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            acc = a
            digits += 1
            i += 1
        }
        if digits == 0 { return nil }
        if i < n {
            // Only a fractional part made of zeros may follow.
            guard b[i] == UInt8(ascii: ".") else { return nil }
            i += 1
            while i < n { if b[i] != UInt8(ascii: "0") { return nil }; i += 1 }
        }
        if neg {
            if acc > UInt64(Int64.max) + 1 { return nil }
            return acc == UInt64(Int64.max) + 1 ? Int64.min : -Int64(acc)
        }
        if acc > UInt64(Int64.max) { return nil }
        return Int64(acc)
    }

    /// Reads an optional `+`/`-` at `i`; returns whether it was a minus.
    @inline(__always) static func readSign(_ b: UnsafeRawBufferPointer, _ i: inout Int) -> Bool {
        guard i < b.count else { return false }
        if b[i] == UInt8(ascii: "-") { i += 1; return true }
        if b[i] == UInt8(ascii: "+") { i += 1 }
        return false
    }

    /// Reads an optional exponent (`e10`, `E-3`) at `i`. Returns 0 when there is none, nil
    /// when an `e` has no digits. Huge exponents saturate (the caller range-checks).
    @inline(__always) static func readExponent(_ b: UnsafeRawBufferPointer, _ i: inout Int) -> Int? {
        guard i < b.count, b[i] | 0x20 == UInt8(ascii: "e") else { return 0 }
        i += 1
        let negative = readSign(b, &i)
        var e = 0
        var digits = 0
        while i < b.count, b[i] &- 48 <= 9 {
            if e < 100_000 { e = e * 10 + Int(b[i] &- 48) }
            digits += 1
            i += 1
        }
        if digits == 0 { return nil }
        return negative ? -e : e
    }

    // MARK: Floating point

    @usableFromInline static let exactPowers: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// Decimal floating point (`-1.5`, `2e10`, `.5`), or `NaN` / `Infinity` / `inf`.
    /// Correctly rounded: the fast path is exact, other inputs go to the C library.
    public static func parseDouble(_ raw: UnsafeRawBufferPointer) -> Double? {
        let b = trimmed(raw)
        let n = b.count
        if n == 0 { return nil }
        var i = 0
        let neg = readSign(b, &i)
        var mantissa: UInt64 = 0
        var sigDigits = 0
        var exp10 = 0
        var sawDigit = false
        var truncated = false
        while i < n, b[i] &- 48 <= 9 {
            sawDigit = true
            if sigDigits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(b[i] &- 48)
                if mantissa != 0 { sigDigits += 1 }
            } else {
                exp10 += 1
                truncated = true
            }
            i += 1
        }
        if i < n, b[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, b[i] &- 48 <= 9 {
                sawDigit = true
                if sigDigits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(b[i] &- 48)
                    if mantissa != 0 { sigDigits += 1 }
                    exp10 -= 1
                } else {
                    truncated = true
                }
                i += 1
            }
        }
        if !sawDigit { return parseSpecialDouble(b, from: i, negative: neg) }
        guard let e = readExponent(b, &i), i == n else { return nil }
        exp10 += e
        if !truncated {
            if mantissa == 0 { return neg ? -0.0 : 0.0 }
            // Clinger's fast path: both operands exact, so one rounding.
            if mantissa < (1 << 53) && exp10 >= -22 && exp10 <= 22 {
                var v = Double(mantissa)
                if exp10 < 0 { v /= exactPowers[-exp10] } else { v *= exactPowers[exp10] }
                return neg ? -v : v
            }
            let v = eiselLemire(mantissa, exp10)
            return neg ? -v : v
        }
        // More than 19 significant digits: the C library rounds those. The grammar was checked above.
        let text = String(decoding: b, as: UTF8.self)
        return Double(text)
    }

    /// Correctly rounded `w × 10^q` for a non-zero 19-digit-or-shorter `w` (the Eisel-Lemire
    /// algorithm, as in Lemire 2021 and Mushtak & Lemire 2023, which shows no fallback is needed).
    static func eiselLemire(_ w: UInt64, _ q: Int) -> Double {
        if q < -342 { return 0 }
        if q > 308 { return .infinity }
        let lz = w.leadingZeroBitCount
        let wn = w << UInt64(lz)
        let index = 2 * (q + 342)
        var (hi, lo) = wn.multipliedFullWidth(by: powersOfFive128[index])
        if hi & 0x1FF == 0x1FF {
            let (hi2, _) = wn.multipliedFullWidth(by: powersOfFive128[index + 1])
            let (sum, carry) = lo.addingReportingOverflow(hi2)
            lo = sum
            if carry { hi &+= 1 }
        }
        let upperbit = Int(hi >> 63)
        let shift = UInt64(upperbit + 64 - 52 - 3)
        var mantissa = hi >> shift
        var power2 = ((217_706 * q) >> 16) + 63 + upperbit - lz + 1023
        if power2 <= 0 {
            // Subnormal.
            if -power2 + 1 >= 64 { return 0 }
            mantissa >>= UInt64(-power2 + 1)
            mantissa += mantissa & 1
            mantissa >>= 1
            power2 = mantissa < (1 << 52) ? 0 : 1
            return Double(bitPattern: mantissa | (UInt64(power2) << 52))
        }
        // Exactly halfway between two doubles: round to even.
        if lo <= 1 && q >= -4 && q <= 23 && mantissa & 3 == 1 && (mantissa << shift) == hi {
            mantissa &= ~1
        }
        mantissa += mantissa & 1
        mantissa >>= 1
        if mantissa >= (2 << 52) {
            mantissa = 1 << 52
            power2 += 1
        }
        mantissa &= ~(1 << 52)
        if power2 >= 0x7FF { return .infinity }
        return Double(bitPattern: mantissa | (UInt64(power2) << 52))
    }

    static func parseSpecialDouble(_ b: UnsafeRawBufferPointer, from i: Int, negative: Bool) -> Double? {
        let word = String(decoding: UnsafeRawBufferPointer(rebasing: b[i...]), as: UTF8.self).lowercased()
        switch word {
        case "nan": return .nan
        case "inf", "infinity": return negative ? -.infinity : .infinity
        default: return nil
        }
    }

    // MARK: Decimal

    /// Why a decimal did not parse.
    public enum DecimalFailure: Error, Sendable, Equatable {
        case syntax
        case tooManyDigits(precision: Int)
        case tooManyFractionDigits(scale: Int)
    }

    /// Exact decimal (`-12.50`, `1e3`). With a `scale`, the value is rescaled to it, and
    /// refused (not rounded) when that would drop non-zero digits.
    public static func parseDecimal(_ raw: UnsafeRawBufferPointer, precision: Int, scale: Int?) -> Result<ExactDecimal, DecimalFailure> {
        let b = trimmed(raw)
        let n = b.count
        if n == 0 { return .failure(.syntax) }
        var i = 0
        let neg = readSign(b, &i)
        var sig: Int128 = 0
        var digits = 0
        var frac = 0
        var sawDigit = false
        var overflow = false
        var seenPoint = false
        while i < n {
            let c = b[i]
            if c &- 48 <= 9 {
                sawDigit = true
                if sig != 0 || c != 48 { digits += 1 }
                if digits > ExactDecimal.maxDigits { overflow = true } else { sig = sig * 10 + Int128(c &- 48) }
                if seenPoint { frac += 1 }
            } else if c == UInt8(ascii: "."), !seenPoint {
                seenPoint = true
            } else {
                break
            }
            i += 1
        }
        if !sawDigit { return .failure(.syntax) }
        guard let exp = readExponent(b, &i), i == n else { return .failure(.syntax) }
        if overflow { return .failure(.tooManyDigits(precision: precision)) }
        var sc = frac - exp
        if sc > ExactDecimal.maxDigits || sc < -ExactDecimal.maxDigits { return .failure(.tooManyDigits(precision: precision)) }
        // Negative scale (e.g. 12e3) becomes a plain integer when it fits.
        var d = ExactDecimal(significand: neg ? -sig : sig, scale: Int16(sc))
        if sc < 0 {
            guard let r = d.rescaled(to: 0) else { return .failure(.tooManyDigits(precision: precision)) }
            d = r
            sc = 0
        }
        if let scale {
            if sc > scale {
                guard let r = d.rescaled(to: scale) else { return .failure(.tooManyFractionDigits(scale: scale)) }
                d = r
            } else if sc < scale {
                guard let r = d.rescaled(to: scale) else { return .failure(.tooManyDigits(precision: precision)) }
                d = r
            }
        }
        if d.digitCount > precision && d.significand != 0 { return .failure(.tooManyDigits(precision: precision)) }
        return .success(d)
    }

    // MARK: Booleans

    /// `true/false`, `t/f`, `yes/no`, `y/n`, `on/off`, `1/0`, in any case.
    public static func parseBool(_ raw: UnsafeRawBufferPointer) -> Bool? {
        let b = trimmed(raw)
        switch b.count {
        case 1:
            switch b[0] {
            case UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "y"), UInt8(ascii: "Y"), UInt8(ascii: "1"): return true
            case UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "0"): return false
            default: return nil
            }
        case 2...5:
            var w: UInt64 = 0
            for c in b { w = w << 8 | UInt64(c | 0x20) }
            switch w {
            case 0x7472_7565, 0x796573, 0x6f6e: return true  // true, yes, on
            case 0x66_616c_7365, 0x6e6f, 0x6f_6666: return false  // false, no, off
            default: return nil
            }
        default: return nil
        }
    }

    /// Only `true` / `false` (any case): what inference calls a boolean column.
    public static func isBoolWord(_ raw: UnsafeRawBufferPointer) -> Bool {
        let b = trimmed(raw)
        guard b.count == 4 || b.count == 5 else { return false }
        var w: UInt64 = 0
        for c in b { w = w << 8 | UInt64(c | 0x20) }
        return w == 0x7472_7565 || w == 0x66_616c_7365
    }

    // MARK: Dates and times

    @inline(__always) static func digit(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int? {
        let d = b[i] &- 48
        return d <= 9 ? Int(d) : nil
    }

    @inline(__always) static func twoDigits(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int? {
        guard i + 1 < b.count, let a = digit(b, i), let c = digit(b, i + 1) else { return nil }
        return a * 10 + c
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }

    /// The civil date of a day count (inverse of ``daysFromCivil(year:month:day:)``).
    public static func civilFromDays(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Parses `YYYY-MM-DD` at the start of `b`; returns days and the index after it.
    static func parseDatePrefix(_ b: UnsafeRawBufferPointer) -> (Int64, Int)? {
        guard b.count >= 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              let y1 = twoDigits(b, 0), let y2 = twoDigits(b, 2),
              let m = twoDigits(b, 5), let d = twoDigits(b, 8) else { return nil }
        let y = y1 * 100 + y2
        guard y >= 1, m >= 1, m <= 12, d >= 1, d <= daysInMonth(y, m) else { return nil }
        return (daysFromCivil(year: y, month: m, day: d), 10)
    }

    /// `YYYY-MM-DD`, as days since 1970-01-01.
    public static func parseDate(_ raw: UnsafeRawBufferPointer) -> Int64? {
        let b = trimmed(raw)
        guard b.count == 10, let (days, _) = parseDatePrefix(b) else { return nil }
        return days
    }

    /// A parsed timestamp: microseconds as written (wall clock), and the zone offset in
    /// seconds when the text carried one (`Z`, `+02:00`, `-0330`, `+05`).
    public struct ParsedTimestamp: Sendable, Equatable {
        public var wallMicros: Int64
        public var offsetSeconds: Int?
        /// Microseconds since the epoch in UTC (the wall clock minus the offset, if any).
        public var utcMicros: Int64 { wallMicros - Int64(offsetSeconds ?? 0) * 1_000_000 }
    }

    /// ISO 8601 / SQL timestamps: `2024-05-01T10:20:30.123456Z`, `2024-05-01 10:20`,
    /// a bare date (midnight). Fractions beyond microseconds are rounded half up.
    /// `HH:MM[:SS[.ffffff]]` → microseconds since midnight (fractions past 6 digits round).
    public static func parseTime(_ raw: UnsafeRawBufferPointer) -> Int64? {
        let b = trimmed(raw)
        // Reuse the timestamp grammar on a fixed date prefix.
        var text: [UInt8] = Array("1970-01-01T".utf8)
        text.append(contentsOf: b)
        return text.withUnsafeBytes { t -> Int64? in
            guard let p = parseTimestamp(t), p.offsetSeconds == nil, p.wallMicros < 86_400_000_000 else { return nil }
            return p.wallMicros
        }
    }

    public static func parseTimestamp(_ raw: UnsafeRawBufferPointer) -> ParsedTimestamp? {
        let b = trimmed(raw)
        guard let (days, afterDate) = parseDatePrefix(b) else { return nil }
        var i = afterDate
        let n = b.count
        var micros = days * 86_400_000_000
        if i == n { return ParsedTimestamp(wallMicros: micros, offsetSeconds: nil) }
        guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hh = twoDigits(b, i), i + 2 < n, b[i + 2] == UInt8(ascii: ":"), let mm = twoDigits(b, i + 3) else { return nil }
        i += 5
        var ss = 0
        if i < n, b[i] == UInt8(ascii: ":") {
            guard let s = twoDigits(b, i + 1) else { return nil }
            ss = s
            i += 3
        }
        // 24:00:00 is not accepted; leap second 60 is not either.
        guard hh < 24, mm < 60, ss < 60 else { return nil }
        var frac: Int64 = 0
        if i < n, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var fd = 0
            var roundUp = false
            while i < n, let d = digit(b, i) {
                if fd < 6 { frac = frac * 10 + Int64(d) } else if fd == 6 { roundUp = d >= 5 }
                fd += 1
                i += 1
            }
            if fd == 0 { return nil }
            var scaleUp = fd
            while scaleUp < 6 { frac *= 10; scaleUp += 1 }
            if roundUp { frac += 1 }
        }
        micros += Int64(hh * 3600 + mm * 60 + ss) * 1_000_000 + frac
        var offset: Int? = nil
        if i < n, b[i] == UInt8(ascii: " ") { i += 1 }
        if i < n {
            let c = b[i]
            if c == UInt8(ascii: "Z") || c == UInt8(ascii: "z") {
                offset = 0
                i += 1
            } else if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                guard let oh = twoDigits(b, i + 1) else { return nil }
                i += 3
                var om = 0
                if i < n, b[i] == UInt8(ascii: ":") { i += 1 }
                if i < n {
                    guard let m = twoDigits(b, i) else { return nil }
                    om = m
                    i += 2
                }
                guard oh <= 18, om < 60 else { return nil }
                let secs = oh * 3600 + om * 60
                offset = c == UInt8(ascii: "-") ? -secs : secs
            } else if n - i == 3, (b[i] | 0x20, b[i + 1] | 0x20, b[i + 2] | 0x20) == (0x75, 0x74, 0x63) {
                offset = 0  // "UTC"
                i += 3
            }
        }
        if i != n { return nil }
        return ParsedTimestamp(wallMicros: micros, offsetSeconds: offset)
    }

    // MARK: UUID

    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any case, optional braces) or 32 hex digits.
    /// Appends the 16 bytes to `out` and returns true, or returns false leaving `out` as is.
    public static func parseUUID(_ raw: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        var b = trimmed(raw)
        if b.count == 38, b[0] == UInt8(ascii: "{"), b[37] == UInt8(ascii: "}") { b = UnsafeRawBufferPointer(rebasing: b[1..<37]) }
        let dashed = b.count == 36
        guard dashed || b.count == 32 else { return false }
        if dashed {
            for p in [8, 13, 18, 23] where b[p] != UInt8(ascii: "-") { return false }
        }
        var bytes: (UInt64, UInt64) = (0, 0)
        var nibbles = 0
        for i in 0..<b.count {
            if dashed && (i == 8 || i == 13 || i == 18 || i == 23) { continue }
            guard let v = hexValue(b[i]) else { return false }
            if nibbles < 16 { bytes.0 = bytes.0 << 4 | UInt64(v) } else { bytes.1 = bytes.1 << 4 | UInt64(v) }
            nibbles += 1
        }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bytes.0 >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bytes.1 >> UInt64(shift))) }
        return true
    }

    // MARK: Bytes

    /// `\x` followed by hex digits (PostgreSQL's bytea text form), else standard base64.
    public static func parseBytes(_ b: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        let start = out.count
        if b.count >= 2, b[0] == UInt8(ascii: "\\"), b[1] | 0x20 == UInt8(ascii: "x") {
            guard b.count % 2 == 0 else { return false }
            var i = 2
            while i < b.count {
                guard let h = hexValue(b[i]), let l = hexValue(b[i + 1]) else { out.removeSubrange(start...); return false }
                out.append(h << 4 | l)
                i += 2
            }
            return true
        }
        if Base64.decode(b, into: &out) { return true }
        out.removeSubrange(start...)
        return false
    }

    // MARK: UTF-8

    /// Whether `b` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
    public static func isValidUTF8(_ b: UnsafeRawBufferPointer) -> Bool {
        let n = b.count
        guard let base = b.baseAddress else { return true }
        var i = 0
        while i < n {
            // ASCII eight bytes at a time, again after each other character (a degree sign
            // in a line of ASCII).
            while i + 8 <= n, base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
            guard i < n else { break }
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            if c < 0xC2 { return false }
            if c < 0xE0 {
                guard i + 1 < n, b[i + 1] & 0xC0 == 0x80 else { return false }
                i += 2
            } else if c < 0xF0 {
                guard i + 2 < n, b[i + 1] & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80 else { return false }
                if c == 0xE0 && b[i + 1] < 0xA0 { return false }  // overlong
                if c == 0xED && b[i + 1] >= 0xA0 { return false }  // surrogates
                i += 3
            } else if c < 0xF5 {
                guard i + 3 < n, b[i + 1] & 0xC0 == 0x80, b[i + 2] & 0xC0 == 0x80, b[i + 3] & 0xC0 == 0x80 else { return false }
                if c == 0xF0 && b[i + 1] < 0x90 { return false }
                if c == 0xF4 && b[i + 1] >= 0x90 { return false }
                i += 4
            } else {
                return false
            }
        }
        return true
    }
}

extension ExactDecimal {
    static let maxDigits = ColumnType.maxDecimalPrecision
}
