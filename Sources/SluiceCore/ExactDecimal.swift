/// An exact decimal number: `significand × 10^-scale`, with up to 38 significant digits.
///
/// Used for `decimal` columns so that money and other fixed-point values never pass
/// through binary floating point.
public struct ExactDecimal: Sendable, Hashable {
    public var significand: Int128
    public var scale: Int16

    public init(significand: Int128, scale: Int16) {
        self.significand = significand
        self.scale = scale
    }

    /// 10^s as a double, exact for 0 ≤ s ≤ 22.
    public static func pow10Double(_ s: Int) -> Double {
        var v = 1.0
        for _ in 0..<min(max(s, 0), 22) { v *= 10 }
        return v
    }

    static let maxSignificand: Int128 = 99_999_999_999_999_999_999_999_999_999_999_999_999

    /// Number of decimal digits in the significand (at least 1).
    public var digitCount: Int {
        var m = significand.magnitude
        var n = 1
        while m >= 10 { m /= 10; n += 1 }
        return n
    }

    /// Canonical text: `-12.50`, `0.001`, `42`. The scale is kept (`12.50` stays `12.50`).
    public var text: String {
        var out: [UInt8] = []
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends ``text``'s bytes to `out`, building no String (a loader renders one per
    /// decimal value); 64-bit arithmetic when the significand fits.
    public func write(into out: inout [UInt8]) {
        if significand < 0 { out.append(UInt8(ascii: "-")) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buf in
            var n = 0  // digits, least significant first
            let m = significand.magnitude
            if m <= UInt128(UInt64.max) {
                var v = UInt64(m)
                repeat { buf[n] = UInt8(v % 10) + 48; v /= 10; n += 1 } while v > 0
            } else {
                var v = m
                repeat { buf[n] = UInt8(v % 10) + 48; v /= 10; n += 1 } while v > 0
            }
            let sc = Int(scale)
            if sc > 0 && n <= sc {
                out.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: ".")])
                out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: sc - n))
                for k in stride(from: n - 1, through: 0, by: -1) { out.append(buf[k]) }
                return
            }
            for k in stride(from: n - 1, through: 0, by: -1) {
                out.append(buf[k])
                if sc > 0 && k == sc { out.append(UInt8(ascii: ".")) }
            }
            if sc < 0 { out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -sc)) }
        }
    }

    /// Returns this value rescaled to `target` digits after the point, or nil when that
    /// would drop non-zero digits or overflow 38 digits.
    public func rescaled(to target: Int) -> ExactDecimal? {
        let t = Int16(target)
        if t == scale { return self }
        if t > scale {
            var s = significand
            for _ in 0..<(Int(t) - Int(scale)) {
                let (m, o) = s.multipliedReportingOverflow(by: 10)
                if o || m.magnitude > Self.maxSignificand.magnitude { return nil }
                s = m
            }
            return ExactDecimal(significand: s, scale: t)
        }
        var s = significand
        for _ in 0..<(Int(scale) - Int(t)) {
            let (q, r) = s.quotientAndRemainder(dividingBy: 10)
            if r != 0 { return nil }
            s = q
        }
        return ExactDecimal(significand: s, scale: t)
    }
}

extension ExactDecimal: CustomStringConvertible {
    public var description: String { text }
}
