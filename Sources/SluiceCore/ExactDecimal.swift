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
        var digits = String(significand.magnitude)
        let neg = significand < 0
        if scale > 0 {
            let sc = Int(scale)
            if digits.count <= sc { digits = String(repeating: "0", count: sc - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -sc))
        } else if scale < 0 {
            digits += String(repeating: "0", count: Int(-scale))
        }
        return neg ? "-" + digits : digits
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
