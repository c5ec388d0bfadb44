/// A parsed JSON document. Numbers keep their literal text so that exact decimals and
/// 64-bit integers survive; object members keep their order.
public indirect enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written (`12`, `-0.5`, `1e9`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        // Last one wins, as in most JSON parsers.
        return members.last { $0.key == key }?.value
    }

    /// Follows a path of object keys and array indices (`["customer", "address", "city"]`).
    public func value(at path: some Collection<Substring>) -> JSONValue? {
        var cur = self
        for seg in path {
            switch cur {
            case .object: guard let v = cur[String(seg)] else { return nil }; cur = v
            case .array(let items): guard let i = Int(seg), i >= 0, i < items.count else { return nil }; cur = items[i]
            default: return nil
            }
        }
        return cur
    }

    /// ``value(at:)`` for a path of whole keys (no substring conversions on the way).
    public func value(path: [String]) -> JSONValue? {
        var cur = self
        for seg in path {
            switch cur {
            case .object(let members):
                guard let m = members.last(where: { $0.key == seg }) else { return nil }
                cur = m.value
            case .array(let items):
                guard let i = Int(seg), i >= 0, i < items.count else { return nil }
                cur = items[i]
            default: return nil
            }
        }
        return cur
    }

    /// Compact JSON text.
    public var text: String {
        var out: [UInt8] = []
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, v) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, m) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                m.value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ s: String, into out: inout [UInt8]) { writeString(bytes: s.utf8, into: &out) }

    /// Appends UTF-8 `bytes` as a quoted, escaped JSON string.
    public static func writeString<C: Collection>(bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        out.append(UInt8(ascii: "\""))
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(ValueText.hexDigits[Int(b >> 4)])
                out.append(ValueText.hexDigits[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// One `"key": value` pair of a JSON object.
public struct JSONMember: Sendable, Hashable {
    public var key: String
    public var value: JSONValue
    public init(key: String, value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// Why a JSON text did not parse, and the byte offset where parsing stopped.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset + 1): \(reason)" }
}

/// A strict RFC 8259 parser over bytes, with a nesting limit.
public struct JSONParser {
    public static let maxDepth = 256

    let b: UnsafeRawBufferPointer
    var i = 0
    var depth = 0

    /// Parses exactly one JSON value (surrounding whitespace allowed).
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> JSONValue {
        var p = JSONParser(b: bytes)
        p.skipSpace()
        let v = try p.parseValue()
        p.skipSpace()
        if p.i != bytes.count { throw JSONParseError(offset: p.i, reason: "unexpected text after the value") }
        return v
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var copy = text
        do {
            return try copy.withUTF8 { buf in
                do { return try parse(UnsafeRawBufferPointer(buf)) } catch { throw error }
            }
        } catch let e as JSONParseError {
            throw e
        } catch {
            throw JSONParseError(offset: 0, reason: "unreadable text")
        }
    }

    @inline(__always) mutating func skipSpace() { JSONLex.skipSpace(b, &i) }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), 48...57: return .number(try parseNumber())
        default: throw fail("unexpected character '\(Unicode.Scalar(b[i]))'")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONParseError) { try JSONLex.literal(word, b, &i) }

    mutating func parseNumber() throws(JSONParseError) -> String {
        let start = i
        try JSONLex.number(b, &i)
        return String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
    }

    mutating func parseString() throws(JSONParseError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: b[start..<i])
                guard Coercion.isValidUTF8(raw) else { throw JSONParseError(offset: start, reason: "invalid UTF-8 in string") }
                i += 1
                return String(decoding: raw, as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            i += 1
        }
        var out = Array(UnsafeRawBufferPointer(rebasing: b[start..<i]))
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw JSONParseError(offset: start, reason: "invalid UTF-8 in string") }
                return s
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            if let byte = JSONLex.simpleEscape(e) {
                out.append(byte)
            } else if e == UInt8(ascii: "u") {
                let scalar = try JSONLex.unicodeEscape(b, &i)
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid escape") }
                out.append(contentsOf: UTF8.encode(u)!)
            } else {
                throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }


    mutating func parseArray() throws(JSONParseError) -> JSONValue {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
        defer { depth -= 1 }
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue())
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of input") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseObject() throws(JSONParseError) -> JSONValue {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
        defer { depth -= 1 }
        i += 1
        var members: [JSONMember] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipSpace()
            members.append(JSONMember(key: key, value: try parseValue()))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of input") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }
}

/// The lexical pieces both JSON readers share (``JSONParser`` builds values, ``JSONTape``
/// records tokens): each reads at `i` and moves it past what it read.
enum JSONLex {
    @inline(__always) static func skipSpace(_ b: UnsafeRawBufferPointer, _ i: inout Int) {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    static func literal(_ word: StaticString, _ b: UnsafeRawBufferPointer, _ i: inout Int) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw JSONParseError(offset: i, reason: "unexpected end of input") }
        let p = word.utf8Start
        for k in 0..<n where b[i + k] != p[k] { throw JSONParseError(offset: i, reason: "invalid literal") }
        i += n
    }

    /// Moves `i` over string bytes up to a quote, a backslash, a control byte or the end,
    /// eight bytes at a time where it can (SWAR: a flagged byte may be a false alarm only
    /// after a real one); `ascii` turns false at a byte of 0x80 or more.
    @inline(__always) static func skipPlain(_ b: UnsafeRawBufferPointer, _ i: inout Int, ascii: inout Bool) {
        while true {
            while i + 8 <= b.count {
                let w = b.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let lo: UInt64 = 0x0101_0101_0101_0101, hi: UInt64 = 0x8080_8080_8080_8080
                let quote = w ^ (lo &* 0x22), slash = w ^ (lo &* 0x5C)
                let special = ((quote &- lo) & ~quote) | ((slash &- lo) & ~slash) | ((w &- lo &* 0x20) & ~w)
                if special & hi != 0 { break }
                if w & hi != 0 { ascii = false }
                i += 8
            }
            guard i < b.count else { return }
            let c = b[i]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 { return }
            if c >= 0x80 { ascii = false }
            i += 1
        }
    }

    /// An RFC 8259 number (no leading zeros, digits after the point and the exponent).
    static func number(_ b: UnsafeRawBufferPointer, _ i: inout Int) throws(JSONParseError) {
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, b[i] &- 48 <= 9 else { throw JSONParseError(offset: i, reason: "invalid number") }
        if b[i] == 48 { i += 1 } else { while i < b.count, b[i] &- 48 <= 9 { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, b[i] &- 48 <= 9 else { throw JSONParseError(offset: i, reason: "invalid number") }
            while i < b.count, b[i] &- 48 <= 9 { i += 1 }
        }
        if i < b.count, b[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, b[i] &- 48 <= 9 else { throw JSONParseError(offset: i, reason: "invalid number") }
            while i < b.count, b[i] &- 48 <= 9 { i += 1 }
        }
    }

    /// The byte a one-letter escape stands for (`n` → LF, `"` → `"`); nil for any other letter.
    @inline(__always) static func simpleEscape(_ e: UInt8) -> UInt8? {
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): e
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
    }

    /// The scalar of a `\u` escape whose digits start at `i`, with the low half of a
    /// surrogate pair read too; a lone half is refused.
    static func unicodeEscape(_ b: UnsafeRawBufferPointer, _ i: inout Int) throws(JSONParseError) -> UInt32 {
        let scalar = try hex4(b, &i)
        if scalar >= 0xD800 && scalar < 0xDC00 {
            guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                throw JSONParseError(offset: i, reason: "unpaired surrogate")
            }
            i += 2
            let low = try hex4(b, &i)
            guard low >= 0xDC00 && low < 0xE000 else { throw JSONParseError(offset: i, reason: "unpaired surrogate") }
            return 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        if scalar >= 0xDC00 && scalar < 0xE000 { throw JSONParseError(offset: i, reason: "unpaired surrogate") }
        return scalar
    }

    /// The four hex digits of a `\u` escape.
    static func hex4(_ b: UnsafeRawBufferPointer, _ i: inout Int) throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw JSONParseError(offset: i, reason: "invalid \\u escape") }
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let h = Coercion.hexValue(b[i + k]) else { throw JSONParseError(offset: i, reason: "invalid \\u escape") }
            v = v << 4 | UInt32(h)
        }
        i += 4
        return v
    }
}
