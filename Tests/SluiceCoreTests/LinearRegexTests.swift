import Testing
import Foundation
@testable import SluiceCore

/// Issue 24: the `parse` step's regular expressions, linear in the text on any input.
@Suite struct LinearRegexTests {
    func caps(_ pattern: String, _ text: String) throws -> [String: String]? { try LinearRegex(pattern).match(text) }

    @Test func namedCapturesOfSeed004sLines() throws {
        let lat = #"^Latitude: (?<lat_dms>\S+)\s+(?<lat>-?\d+\.\d+)"#
        #expect(try caps(lat, "Latitude: 30°02′59″S   -30.04982864") == ["lat_dms": "30°02′59″S", "lat": "-30.04982864"])
        #expect(try caps(lat, "Longitude: 51°12′05″W   -51.20150245") == nil)
        let dist = #"Distance: (?<km>[\d,]+) km Bearing: (?<bearing>[\d,]+)°"#
        #expect(try caps(dist, "Distance: 2,2959 km Bearing: 137,352°") == ["km": "2,2959", "bearing": "137,352"])
    }

    @Test func leftmostFirstLikeABacktrackingEngine() throws {
        #expect(try caps("(?<x>a|ab)(?<y>c|bcd)", "abcd") == ["x": "a", "y": "bcd"])
        #expect(try caps("(?<x>a+)", "baaa") == ["x": "aaa"])
        #expect(try caps("(?<x>a+?)", "baaa") == ["x": "a"])
        #expect(try caps("(?<x>a{2,3})", "aaaa") == ["x": "aaa"])
        #expect(try caps("(?<x>a{2})(?<y>a*)", "aaaa") == ["x": "aa", "y": "aa"])
        #expect(try caps("(?<x>[^,]*),(?<y>.*)$", "one,two,three") == ["x": "one", "y": "two,three"])
        #expect(try caps("x(?<opt>y)?z", "xz") == [:])
        #expect(try caps("^(?<w>\\w+)$", "ab\ncd") == ["w": "ab"])
        #expect(try LinearRegex("[a-c-]+").matches("x-b-") && !LinearRegex("^[^0-9]+$").matches("ab1"))
        #expect(try LinearRegex("a\\.b").matches("a.b") && !LinearRegex("a\\.b").matches("axb"))
    }

    @Test func mistakesAreNamed() {
        for bad in ["(a", "a)", "[a-", "*a", "a{3,1}", "(?<n>a)(?<n>b)", "\\q", "(?=a)", "a{5000}"] {
            #expect(throws: SluiceError.self, "\(bad)") { try LinearRegex(bad) }
        }
    }

    /// `(a+)+$` and `(a|aa)*c` on a megabyte of `a`s take seconds or longer in a backtracking
    /// engine (exponential); here they take time in proportion to the line.
    @Test func catastrophicPatternsStayLinearOnAMegabyteLine() throws {
        let line = String(repeating: "a", count: 1 << 20) + "!"
        for pattern in ["(a+)+$", "(a|aa)*c", "(?<x>(a*)*)b"] {
            let r = try LinearRegex(pattern)
            let start = Date()
            #expect(!r.matches(line))
            #expect(Date().timeIntervalSince(start) < 30, "\(pattern) took \(Date().timeIntervalSince(start)) s")
        }
        // Lines short enough for the bit-state search (which marks only splits) stay linear
        // too, and find what the Pike VM finds.
        let short = Array((String(repeating: "a", count: 20_000) + "!").utf8)
        for pattern in ["(a+)+$", "(a|aa)*c", "(?<x>(a*)*)b", "(?<y>(a|a)*)!"] {
            let r = try LinearRegex(pattern)
            let start = Date()
            short.withUnsafeBufferPointer { text in #expect(r.backtrack(text) == r.pike(text), "\(pattern)") }
            #expect(Date().timeIntervalSince(start) < 30, "\(pattern) took \(Date().timeIntervalSince(start)) s")
        }
    }
}

/// Issue 24: the typed helpers that turn seed 004's text into numbers.
@Suite struct TextHelperTests {
    func eval(_ text: String) throws -> EValue { try ExprEvaluator.eval(try ExprParser.parse(text), [:]) }

    @Test func degreesInTheirSpellings() throws {
        #expect(abs(Degrees.parse("30°02′59″S")! - -30.049722) < 1e-6)
        #expect(abs(Degrees.parse("51°12'05\"W")! - -51.201389) < 1e-6)
        #expect(abs(Degrees.parse("N 30° 2' 59.5\"")! - 30.049861) < 1e-6)
        #expect(Degrees.parse("-30°02′59″") == Degrees.parse("30°02′59″S"))
        #expect(Degrees.parse("12,5") == 12.5)
        for bad in ["", "abc", "30°61′00″N", "30 2 59", "200°", "1°2′3″4″"] { #expect(Degrees.parse(bad) == nil, "\(bad)") }
    }

    @Test func numbersDatesAndRejects() throws {
        #expect(try eval("to_number('2,2959', ',')") == .double(2.2959))
        #expect(try eval("to_number('-30.5')") == .double(-30.5))
        #expect(try eval("to_date('25/12/2024', '%d/%m/%Y')") == .text("2024-12-25"))
        #expect(throws: ExprFailure.self) { try eval("to_number('2,2959')") }
        #expect(throws: ExprFailure.self) { try eval("dms_to_degrees('north')") }
        #expect(throws: ExprFailure.self) { try eval("to_date('31/02/2024', '%d/%m/%Y')") }
        #expect(try eval("to_number(null)") == .null)
    }
}

extension LinearRegexTests {
    /// Both engines (bit state for short texts, the Pike VM for long ones) give the same captures.
    @Test func bothEnginesAgree() throws {
        let cases: [(String, String)] = [("(?<r>(a?){900}a{900})", String(repeating: "a", count: 900)), ("(?<d>\\S+)°(?<m>\\d+)′", "é 30°02′59″"), ("(?<x>a|ab)(?<y>c|bcd)", "abcd"), ("(?<x>a+?)(?<y>a*)", "aaaa"), ("^(?<w>\\w+) (?<n>\\d{2,3})$", "xy 123"),
                                         ("(?<a>[^,]*),(?<b>.*)", "1,2,3"), ("x(?<o>y)?z", "--xz"), ("(?<q>(a|b)*)c", "ababab"),
                                         // Loops run as spans (nothing after them can continue them), literal runs, and a
                                         // failed start that saved a group with nothing to go back to.
                                         ("(?<a>.*?)(?<b>\\d+)x", "12a345x"), ("(?<s>\\S+) +(?<n>-?\\d+\\.\\d+)", "30°02′59″S   -30.5 x"),
                                         ("(?:ab|abc)(?<d>\\d+)z", "abc12z"), ("(?:(?<g>a)b)?c", "abxc"), ("(?<w>\\w*)(?<e>\\W+)$", "ab cd!!"),
                                         ("Lat: (?<x>[\\d,]+)°", "Lat: 1,2 Lat: 3,4°"), ("(?<p>a*)*b", "aaac aab"),
                                         // Starts skipped to where a line begins (`^`) or to a character a match
                                         // can begin with, never inside a character.
                                         ("^Distance: (?<k>[\\d,]+)", "Lat: 1\nLon: 2\nDistance: 3,5 km"), ("^(?<e>)$", "a\n\nb"), ("^b", "ab"),
                                         ("^(?<x>x)$", "a\nx"), ("^(?<l>.*)$", "a\n"), ("(?<c>°)(?<r>.)", "ab°c"), ("(?<s>.)b", "éb"), ("(?<t>[^a])", "aé"), ("^", ""),
                                         // Loops over a set that holds every wide character step over it by its first byte.
                                         ("(?<s>\\S+) (?<t>[^,]+),", "30°02′59″S😀 c′😀x,"), ("(?<w>\\w+)′", "ab′c"), ("(?<n>[^\u{2032}]+)", "ab°c′d")]
        for (p, t) in cases {
            let r = try LinearRegex(p)
            let bytes = Array(t.utf8)
            bytes.withUnsafeBufferPointer { text in #expect(r.backtrack(text) == r.pike(text), "\(p) on \(t)") }
        }
        #expect(try LinearRegex("^Distance: (?<k>[\\d,]+)").match("Lat: 1\nDistance: 3,5 km") == ["k": "3,5"])
        #expect(try LinearRegex("(?<s>.)b").match("éb") == ["s": "é"])
        #expect(try LinearRegex("(?<s>\\S+) (?<t>[^,]+),").match("30°02′59″S😀 c′😀x,") == ["s": "30°02′59″S😀", "t": "c′😀x"])
    }
}
