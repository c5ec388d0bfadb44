import Testing
import Foundation
@testable import SluiceCore
import SluiceTesting

func withBytes<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    var s = s
    return s.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}

@Suite struct IntegerTests {
    @Test(arguments: [
        ("0", Int64(0)), ("42", 42), ("-42", -42), ("+7", 7), (" 12 ", 12), ("12.0", 12), ("12.", 12),
        ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min), ("007", 7),
    ])
    func parses(_ text: String, _ expected: Int64) {
        #expect(withBytes(text) { Coercion.parseInt64($0) } == expected)
    }

    @Test(arguments: ["", "-", "+", "abc", "1a", "12.5", "9223372036854775808", "-9223372036854775809", "1e3", "1 2", "--1", "0x10"])
    func refuses(_ text: String) {
        #expect(withBytes(text) { Coercion.parseInt64($0) } == nil)
    }
}

@Suite struct DoubleTests {
    @Test(arguments: ["0", "-0", "1", "1.5", "-2.25", ".5", "5.", "1e10", "1E-10", "2.5e+3", "91.40704125522244",
                      "1.7976931348623157e308", "2.2250738585072014e-308", "4.9e-324", "5e-324", "2.4703282292062328e-324",
                      "123456789012345678", "0.1", "0.30000000000000004", "9007199254740993", "1e23", "8.41e21",
                      "3.14159265358979323846264338327950288", "1e-400", "1e400", "0.000001234567890123456789"])
    func matchesTheCLibrary(_ text: String) {
        let ours = withBytes(text) { Coercion.parseDouble($0) }
        let libc = strtod(text, nil)
        #expect(ours?.bitPattern == libc.bitPattern, "\(text): \(String(describing: ours)) vs \(libc)")
    }

    @Test(arguments: ["", "-", ".", "e5", "1e", "1e+", "abc", "1.2.3", "1,5", "0x1p3", "1 5"])
    func refuses(_ text: String) {
        #expect(withBytes(text) { Coercion.parseDouble($0) } == nil)
    }

    @Test func specialWords() {
        #expect(withBytes("NaN") { Coercion.parseDouble($0) }?.isNaN == true)
        #expect(withBytes("-Infinity") { Coercion.parseDouble($0) } == -.infinity)
        #expect(withBytes("inf") { Coercion.parseDouble($0) } == .infinity)
    }

    /// A million random decimal strings of every shape, against glibc's correctly rounded strtod.
    @Test func randomStringsAgreeWithStrtod() {
        var rng = SplitMix(seed: 0x51_1CE)
        var mismatches: [String] = []
        for i in 0..<1_000_000 {
            let text: String
            switch i % 5 {
            case 0: text = String(Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF))  // shortest repr of a random double
            case 1: text = "\(rng.next() % 10_000_000_000_000_000_000)e\(Int(rng.next() % 660) - 340)"
            case 2: text = "0.\(String(rng.next() % 100_000_000_000_000_000))"
            case 3: text = "\(rng.next() % 1000).\(rng.next() % 100_000_000_000_000)"
            default: text = String(format: "%.17g", Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF))
            }
            let ours = withBytes(text) { Coercion.parseDouble($0) }
            if ours?.bitPattern != strtod(text, nil).bitPattern { mismatches.append(text) }
            if mismatches.count > 5 { break }
        }
        #expect(mismatches.isEmpty, "differs from strtod: \(mismatches)")
    }

    /// Doubles written as bytes (no String on the way) are the text ``ValueText/double(_:)``
    /// gives, after what the buffer held: random bit patterns, subnormals, extremes, integers
    /// on both sides of 1e15, -0, NaN and the infinities.
    @Test func bytesAreTheTextOfEveryDouble() {
        var rng = SplitMix(seed: 0xD0_0B1E)
        var values: [Double] = [0, -0.0, 1, -1.5, 0.1, 1e15, 1e15 + 0.5, 999_999_999_999_999, 1e16, 4.9e-324, -2.2250738585072014e-308,
                                .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .nan, .infinity, -.infinity, 91.40704125522244]
        for _ in 0..<200_000 { values.append(Double(bitPattern: rng.next())) }
        var out: [UInt8] = Array("x,".utf8)
        var expected: [UInt8] = Array("x,".utf8)
        for v in values {
            ValueText.double(v, into: &out)
            expected.append(contentsOf: ValueText.double(v).utf8)
            out.append(10)
            expected.append(10)
        }
        #expect(out == expected)
    }
}


@Suite struct DecimalTests {
    func parse(_ s: String, _ p: Int = 38, _ sc: Int? = nil) -> Result<ExactDecimal, Coercion.DecimalFailure> {
        withBytes(s) { Coercion.parseDecimal($0, precision: p, scale: sc) }
    }

    @Test func keepsDigitsExactly() throws {
        #expect(try parse("12.50").get().text == "12.50")
        #expect(try parse("-0.001").get().text == "-0.001")
        #expect(try parse("1e3").get().text == "1000")
        #expect(try parse("1.5e-2").get().text == "0.015")
        #expect(try parse("99999999999999999999999999999999999999").get().text == "99999999999999999999999999999999999999")
    }

    @Test func rescalesToTheDeclaredScale() throws {
        #expect(try parse("12.5", 10, 2).get().text == "12.50")
        #expect(try parse("12.500", 10, 2).get().text == "12.50")
        #expect(try parse("7", 10, 3).get().text == "7.000")
    }

    @Test func refusesInsteadOfRounding() {
        #expect(parse("1.005", 10, 2) == .failure(.tooManyFractionDigits(scale: 2)))
        #expect(parse("123456", 5, 0) == .failure(.tooManyDigits(precision: 5)))
        #expect(parse("1234.5", 5, 2) == .failure(.tooManyDigits(precision: 5)))
        #expect(parse("123456789012345678901234567890123456789") == .failure(.tooManyDigits(precision: 38)))
        #expect(parse("abc") == .failure(.syntax))
        #expect(parse("1..2") == .failure(.syntax))
    }
}

@Suite struct BoolDateTimeTests {
    @Test func booleans() {
        for t in ["true", "TRUE", "t", "yes", "Y", "1", "on"] { #expect(withBytes(t) { Coercion.parseBool($0) } == true, "\(t)") }
        for f in ["false", "F", "no", "n", "0", "off"] { #expect(withBytes(f) { Coercion.parseBool($0) } == false, "\(f)") }
        for x in ["", "2", "tru", "yess", "\u{11}"] { #expect(withBytes(x) { Coercion.parseBool($0) } == nil, "\(x)") }
    }

    @Test func dates() {
        #expect(withBytes("1970-01-01") { Coercion.parseDate($0) } == 0)
        #expect(withBytes("2000-02-29") { Coercion.parseDate($0) } == 11016)
        #expect(withBytes("1969-12-31") { Coercion.parseDate($0) } == -1)
        for bad in ["2001-02-29", "2024-13-01", "2024-00-10", "2024-1-1", "20240101", "2024-04-31", "0000-01-01"] {
            #expect(withBytes(bad) { Coercion.parseDate($0) } == nil, "\(bad)")
        }
    }

    @Test func civilRoundTrip() {
        for d in stride(from: Int64(-800_000), through: 2_900_000, by: 997) {
            let (y, m, day) = Coercion.civilFromDays(d)
            #expect(Coercion.daysFromCivil(year: y, month: m, day: day) == d)
        }
    }

    @Test func timestamps() throws {
        func ts(_ s: String) -> Coercion.ParsedTimestamp? { withBytes(s) { Coercion.parseTimestamp($0) } }
        #expect(ts("1970-01-01T00:00:00Z") == .init(wallMicros: 0, offsetSeconds: 0))
        #expect(ts("1970-01-01 00:00:01.5")?.wallMicros == 1_500_000)
        #expect(ts("1970-01-01T01:00:00+01:00")?.utcMicros == 0)
        #expect(ts("1970-01-01T00:00:00-0330")?.utcMicros == 12_600_000_000)
        #expect(ts("1970-01-01 00:00:00.0000005")?.wallMicros == 1)  // rounded half up
        #expect(ts("1970-01-01 00:00:00.123456789")?.wallMicros == 123_457)
        #expect(ts("2024-05-01")?.wallMicros == 1_714_521_600_000_000)
        #expect(ts("2024-05-01 10:20 UTC")?.offsetSeconds == 0)
        for bad in ["2024-05-01T25:00:00", "2024-05-01T10:60", "2024-05-01T10", "2024-05-01X10:00", "2024-05-01T10:00:00+", "2024-05-01T10:00:00."] {
            #expect(ts(bad) == nil, "\(bad)")
        }
    }

    @Test func renderedTextReadsBack() {
        for micros in [Int64(0), 1, -1, 1_714_521_600_123_456, -62_135_596_800_000_000, 253_402_300_799_999_999] {
            var out: [UInt8] = []
            ValueText.timestamp(micros: micros, utc: true, into: &out)
            let back = out.withUnsafeBytes { Coercion.parseTimestamp($0) }
            #expect(back?.utcMicros == micros, "\(String(decoding: out, as: UTF8.self))")
        }
    }
}

@Suite struct UUIDBytesUTF8Tests {
    @Test func uuids() {
        var out: [UInt8] = []
        #expect(withBytes("123E4567-e89b-12d3-a456-426614174000") { Coercion.parseUUID($0, into: &out) })
        var text: [UInt8] = []
        ValueText.uuid(out, into: &text)
        #expect(String(decoding: text, as: UTF8.self) == "123e4567-e89b-12d3-a456-426614174000")
        out = []
        #expect(withBytes("{123e4567e89b12d3a456426614174000}") { Coercion.parseUUID($0, into: &out) } == false)
        #expect(withBytes("123e4567e89b12d3a456426614174000") { Coercion.parseUUID($0, into: &out) })
        #expect(withBytes("123e4567-e89b-12d3-a456-42661417400g") { Coercion.parseUUID($0, into: &out) } == false)
    }

    @Test func bytesFromHexAndBase64() {
        var out: [UInt8] = []
        #expect(withBytes("\\xDEADbeef") { Coercion.parseBytes($0, into: &out) })
        #expect(out == [0xDE, 0xAD, 0xBE, 0xEF])
        out = []
        #expect(withBytes("aGVsbG8=") { Coercion.parseBytes($0, into: &out) })
        #expect(out == Array("hello".utf8))
        out = []
        #expect(withBytes("not base64!") { Coercion.parseBytes($0, into: &out) } == false)
        #expect(out.isEmpty)
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
    }

    @Test func utf8Validation() {
        let good: [[UInt8]] = [Array("plain ascii text, long enough for the fast path".utf8), Array("ação 日本 😀".utf8)]
        for g in good { #expect(g.withUnsafeBytes { Coercion.isValidUTF8($0) }) }
        let bad: [[UInt8]] = [[0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
                              [0x61, 0xFF], [0xE2, 0x82], Array("abcdefgh".utf8) + [0x80]]
        for b in bad { #expect(b.withUnsafeBytes { Coercion.isValidUTF8($0) } == false, "\(b)") }
    }
}
