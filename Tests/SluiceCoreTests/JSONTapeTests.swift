import Testing
@testable import SluiceCore
import SluiceTesting

/// The tape must read exactly what ``JSONParser`` reads: same values, same refusals.
@Suite struct JSONTapeTests {
    func compact(_ text: String) throws -> String {
        var tape = JSONTape()
        var copy = text
        return try copy.withUTF8 { buf in
            try tape.parse(UnsafeRawBufferPointer(buf))
            var out: [UInt8] = []
            tape.writeCompact(0, into: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }

    @Test(arguments: [
        #" { "a" : [1, 2.5e3, -0], "b": {"c": "x\"\u00e9\ud83d\ude00"}, "d": null, "e": true } "#,
        #"[]"#, #"{}"#, #"[[], {}, [{}], ""]"#, #""\/\\\b\f\n\r\t\u0001""#, #"{"a": 1, "a": 2}"#, "-12.5E+3", "\"é€😀\"",
        #"{"k\u0065y": {"deep": [1, [2, [3, {"x": false}]]]}}"#,
    ])
    func writesWhatTheTreeParserWrites(_ text: String) throws {
        #expect(try compact(text) == JSONParser.parse(text).text)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\":}", "01", "1.", "\"\\x\"", "\"\u{01}\"", "tru", "{\"a\" 1}", "[1] 2", "\"\\ud800\"", "\"\\udc00\"",
                      "[1 2]", "{\"a\":1,}", "\"abc", "\"\\u12g4\""])
    func refusesWhatTheTreeParserRefuses(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
        #expect(throws: JSONParseError.self) { try compact(text) }
    }

    /// Strings are scanned eight bytes at a time: a quote, backslash, control byte or
    /// non-ASCII byte at every offset of the word, in strings of every length around it,
    /// reads (or is refused) as the tree parser reads it.
    @Test func stringsWithSpecialBytesAtEveryOffset() throws {
        for length in 0..<20 {
            for at in 0..<max(1, length) {
                for special in [#"\""#, #"\\"#, #"\n"#, #"\u00e9"#, "é", "😀", "\u{01}", "\""] {
                    var body = Array(repeating: "a", count: length)
                    if length > 0 { body[at] = special }
                    let text = "[\"" + body.joined() + "\", 1]"
                    if let tree = try? JSONParser.parse(text) {
                        #expect(try compact(text) == tree.text, "\(text)")
                    } else {
                        #expect(throws: JSONParseError.self, "\(text)") { try compact(text) }
                    }
                }
            }
        }
    }

    @Test func refusesDeepNestingAndInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try compact(String(repeating: "[", count: 300) + String(repeating: "]", count: 300)) }
        var tape = JSONTape()
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try bytes.withUnsafeBytes { try tape.parse($0) } }
    }

    @Test func findsPathsAsTheTreeDoes() throws {
        let text = #"{"a": {"b": [10, {"c": "x"}]}, "d": 1, "d": 2, "e\u0066": "escaped key", "n": null}"#
        let tree = try JSONParser.parse(text)
        var tape = JSONTape()
        var copy = text
        try copy.withUTF8 { buf in
            try tape.parse(UnsafeRawBufferPointer(buf))
            for path in [["a", "b", "1", "c"], ["a", "b", "0"], ["d"], ["ef"], ["n"], ["a", "b", "2"], ["a", "x"], ["d", "y"], ["a", "b", "-1"]] {
                var out: [UInt8] = []
                if let t = tape.find(path.map(JSONPathStep.init), from: 0) { tape.writeCompact(t, into: &out) }
                #expect(String(decoding: out, as: UTF8.self) == (tree.value(path: path)?.text ?? ""), "\(path)")
            }
        }
    }

    /// Random documents (seeded), with random spacing: the tape and the tree agree on all.
    @Test func agreesWithTheTreeOnRandomDocuments() throws {
        var rng = SplitMix(seed: 42)
        let strings = ["", "plain", "quote\"d", "back\\slash", "tab\t", "é", "😀", "\u{7}", "a,b", "line\nbreak"]
        func value(_ depth: Int) -> String {
            let sp = [" ", "", "\n", "\t "][Int(rng.next() % 4)]
            switch rng.next() % (depth > 3 ? 4 : 6) {
            case 0: return ["null", "true", "false"][Int(rng.next() % 3)]
            case 1: return ["0", "-1", "12.50", "1e9", "-0.25E-3", "9223372036854775807"][Int(rng.next() % 6)]
            case 2, 3:
                var out: [UInt8] = []
                JSONValue.writeString(bytes: strings[Int(rng.next() % UInt64(strings.count))].utf8, into: &out)
                return String(decoding: out, as: UTF8.self)
            case 4: return "[" + sp + (0..<Int(rng.next() % 4)).map { _ in value(depth + 1) }.joined(separator: "," + sp) + sp + "]"
            default: return "{" + (0..<Int(rng.next() % 4)).map { k in "\"k\(k % 3)\"" + sp + ":" + value(depth + 1) }.joined(separator: ",") + "}"
            }
        }
        for _ in 0..<500 {
            let text = value(0)
            #expect(try compact(text) == JSONParser.parse(text).text, "\(text)")
        }
    }

    /// A set of paths answered in one pass gives what ``JSONTape/find(_:from:)`` gives for
    /// each path alone, on documents full of repeated keys, arrays and escaped keys.
    @Test func pathSetsAnswerAsFindDoes() throws {
        var rng = SplitMix(seed: 7)
        let long = String(repeating: "k", count: 70)  // past the table by key length
        let keys = ["a", "b", "0", "1", #"\u0061"#, long, long + "x"]  // the fifth is "a" escaped
        func value(_ depth: Int) -> String {
            switch rng.next() % (depth > 3 ? 2 : 4) {
            case 0: return String(rng.next() % 100)
            case 1: return "\"s\(rng.next() % 10)\""
            case 2: return "[" + (0..<Int(rng.next() % 4)).map { _ in value(depth + 1) }.joined(separator: ",") + "]"
            default: return "{" + (0..<Int(rng.next() % 5)).map { _ in "\"\(keys[Int(rng.next() % 7)])\":" + value(depth + 1) }.joined(separator: ",") + "}"
            }
        }
        let steps = ["a", "b", "0", "1", long]
        for _ in 0..<400 {
            let paths = (0..<Int(1 + rng.next() % 6)).map { _ in (0..<Int(1 + rng.next() % 3)).map { _ in JSONPathStep(steps[Int(rng.next() % 5)]) } }
            let set = JSONPathSet(paths)
            var text = "{" + (0..<Int(rng.next() % 6)).map { _ in "\"\(keys[Int(rng.next() % 7)])\":" + value(1) }.joined(separator: ",") + "}"
            try text.withUTF8 { buf in
                var tape = JSONTape()
                try tape.parse(UnsafeRawBufferPointer(buf))
                var answers: [Int] = []
                var scratch: [UInt8] = []
                set.resolve(tape, from: 0, into: &answers, scratch: &scratch)
                for (i, p) in paths.enumerated() {
                    #expect((answers[i] < 0 ? nil : answers[i]) == tape.find(p, from: 0), "\(p.map { String(decoding: $0.key, as: UTF8.self) }) in \(String(decoding: buf, as: UTF8.self))")
                }
            }
        }
    }
}
