import Testing
import Foundation
import SluiceCore

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
    }
}
