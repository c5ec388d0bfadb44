/// A JSON record read into a flat list of tokens over its own bytes: nothing is built per
/// value, so picking a few fields out of each record of a big file allocates nothing (the
/// token array is reused). As strict as ``JSONParser`` (RFC 8259, UTF-8 checked, nesting
/// limit); a value written back with ``writeCompact(_:into:)`` equals `JSONValue.write`.
public struct JSONTape {
    public enum Kind: UInt8, Sendable { case null, bool, number, string, array, object }

    /// One value (or object key). Strings span the bytes between their quotes; containers
    /// span from the bracket to past the closing one. `next` is the token after the value
    /// and everything inside it, so a value is skipped in one step.
    public struct Token: Sendable {
        public var kind: Kind
        /// A string with backslash escapes (its bytes are not its text).
        public var escaped: Bool
        public var start: Int
        public var end: Int
        public var next: Int
    }

    public private(set) var tokens: [Token] = []
    /// The bytes the tokens point into: valid only while the caller's buffer is.
    public private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    var i = 0
    var depth = 0

    public init() {}

    /// Reads exactly one JSON value (surrounding whitespace allowed); the root is token 0.
    public mutating func parse(_ buffer: UnsafeRawBufferPointer) throws(JSONParseError) {
        tokens.removeAll(keepingCapacity: true)
        bytes = buffer
        i = 0
        depth = 0
        skipSpace()
        try value()
        skipSpace()
        if i != bytes.count { throw fail("unexpected text after the value") }
    }

    @inline(__always) public func kind(_ t: Int) -> Kind { tokens[t].kind }

    /// A scalar's bytes: a string's (still escaped, if ``Token/escaped``), a number's or a literal's.
    @inline(__always) public func raw(_ t: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[tokens[t].start..<tokens[t].end])
    }

    /// A string token's text as UTF-8: its bytes when it has no escapes, else decoded into `scratch`.
    public func text<R>(_ t: Int, scratch: inout [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        guard tokens[t].escaped else { return body(raw(t)) }
        scratch.removeAll(keepingCapacity: true)
        Self.unescape(raw(t), into: &scratch)
        return scratch.withUnsafeBytes(body)
    }

    /// Follows `path` from token `t` (object keys, or indices into arrays; the last of
    /// repeated keys wins, as in ``JSONValue``). Nil when a step is missing.
    public func find(_ path: [JSONPathStep], from t: Int) -> Int? {
        var cur = t
        var scratch: [UInt8] = []
        for step in path {
            switch tokens[cur].kind {
            case .object:
                var found: Int? = nil
                var k = cur + 1
                while k < tokens[cur].next {
                    let v = k + 1
                    let match = tokens[k].escaped ? text(k, scratch: &scratch) { Self.equal($0, step.key) } : Self.equal(raw(k), step.key)
                    if match { found = v }
                    k = tokens[v].next
                }
                guard let found else { return nil }
                cur = found
            case .array:
                guard let index = step.index, index >= 0 else { return nil }
                var c = cur + 1
                var n = 0
                while c < tokens[cur].next && n < index {
                    c = tokens[c].next
                    n += 1
                }
                guard c < tokens[cur].next else { return nil }
                cur = c
            default: return nil
            }
        }
        return cur
    }

    @inline(__always) static func equal(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return b.withUnsafeBufferPointer { b in
            for k in 0..<a.count where a[k] != b[k] { return false }
            return true
        }
    }

    /// Appends token `t` as compact JSON text, exactly as `JSONValue.write` would.
    public func writeCompact(_ t: Int, into out: inout [UInt8]) {
        var scratch: [UInt8] = []
        write(t, into: &out, scratch: &scratch)
    }

    func write(_ t: Int, into out: inout [UInt8], scratch: inout [UInt8]) {
        let tok = tokens[t]
        switch tok.kind {
        case .null, .bool, .number: out.append(contentsOf: raw(t))
        case .string:
            if tok.escaped {
                text(t, scratch: &scratch) { JSONValue.writeString(bytes: $0, into: &out) }
            } else {
                // Unescaped bytes hold no quote, backslash or control character: already JSON.
                out.append(UInt8(ascii: "\""))
                out.append(contentsOf: raw(t))
                out.append(UInt8(ascii: "\""))
            }
        case .array, .object:
            let isObject = tok.kind == .object
            out.append(UInt8(ascii: isObject ? "{" : "["))
            var c = t + 1
            var first = true
            while c < tok.next {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                if isObject {
                    write(c, into: &out, scratch: &scratch)
                    out.append(UInt8(ascii: ":"))
                    c += 1
                }
                write(c, into: &out, scratch: &scratch)
                c = tokens[c].next
            }
            out.append(UInt8(ascii: isObject ? "}" : "]"))
        }
    }

    // MARK: Scanning

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    @inline(__always) mutating func skipSpace() { JSONLex.skipSpace(bytes, &i) }

    @inline(__always) mutating func push(_ kind: Kind, _ start: Int, _ end: Int, escaped: Bool = false) {
        tokens.append(Token(kind: kind, escaped: escaped, start: start, end: end, next: tokens.count + 1))
    }

    mutating func value() throws(JSONParseError) {
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): try container(object: true)
        case UInt8(ascii: "["): try container(object: false)
        case UInt8(ascii: "\""): try string()
        case UInt8(ascii: "t"): try literal("true", .bool)
        case UInt8(ascii: "f"): try literal("false", .bool)
        case UInt8(ascii: "n"): try literal("null", .null)
        case UInt8(ascii: "-"), 48...57: try number()
        default: throw fail("unexpected character '\(Unicode.Scalar(bytes[i]))'")
        }
    }

    mutating func literal(_ word: StaticString, _ kind: Kind) throws(JSONParseError) {
        let start = i
        try JSONLex.literal(word, bytes, &i)
        push(kind, start, i)
    }

    mutating func number() throws(JSONParseError) {
        let start = i
        try JSONLex.number(bytes, &i)
        push(.number, start, i)
    }

    /// A string token; escapes are checked here (so decoding later cannot fail) and the
    /// bytes must be UTF-8, as ``JSONParser`` requires.
    mutating func string() throws(JSONParseError) {
        i += 1
        let start = i
        let b = bytes
        var escaped = false
        var ascii = true
        while i < b.count {
            JSONLex.skipPlain(b, &i, ascii: &ascii)
            guard i < b.count else { break }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                if !ascii && !Coercion.isValidUTF8(UnsafeRawBufferPointer(rebasing: b[start..<i])) {
                    throw JSONParseError(offset: start, reason: "invalid UTF-8 in string")
                }
                push(.string, start, i, escaped: escaped)
                i += 1
                return
            }
            if c < 0x20 { throw fail("control character in string") }
            // A backslash.
            escaped = true
            i += 1
            guard i < b.count else { break }
            if JSONLex.simpleEscape(b[i]) != nil {
                i += 1
            } else if b[i] == UInt8(ascii: "u") {
                i += 1
                _ = try JSONLex.unicodeEscape(b, &i)
            } else {
                throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    mutating func container(object: Bool) throws(JSONParseError) {
        depth += 1
        if depth > JSONParser.maxDepth { throw fail("nesting deeper than \(JSONParser.maxDepth)") }
        defer { depth -= 1 }
        let at = tokens.count
        push(object ? .object : .array, i, i)
        let close = UInt8(ascii: object ? "}" : "]")
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == close {
            i += 1
        } else {
            while true {
                skipSpace()
                if object {
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    try string()
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipSpace()
                }
                try value()
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == close { i += 1; break }
                throw fail(object ? "expected ',' or '}'" : "expected ',' or ']'")
            }
        }
        tokens[at].end = i
        tokens[at].next = tokens.count
    }

    /// Decodes the escapes of a string already checked by the scanner.
    static func unescape(_ b: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        var i = 0
        while i < b.count {
            let c = b[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            let e = b[i + 1]
            i += 2
            if let byte = JSONLex.simpleEscape(e) {
                out.append(byte)
            } else if let scalar = try? JSONLex.unicodeEscape(b, &i), let u = Unicode.Scalar(scalar) {
                out.append(contentsOf: UTF8.encode(u)!)
            }
        }
    }
}

/// One step of a field path for ``JSONTape/find(_:from:)``: an object key, which also
/// indexes arrays when it is a number.
public struct JSONPathStep: Sendable, Equatable {
    public var key: [UInt8]
    public var index: Int?
    public init(_ segment: String) {
        key = Array(segment.utf8)
        index = Int(segment)
    }
}

/// Several paths looked up in one pass over a value's members, not one pass per path, with
/// the answers ``JSONTape/find(_:from:)`` gives: the last of repeated keys wins (a repeated
/// key also forgets what the earlier one's subtree answered). Paths share their prefixes; a
/// member's key finds its step through a table by key length, so a pass costs about one
/// comparison per member whatever the number of paths. A class: the splitter reads it per
/// row, and copying a struct of nine arrays took a retain and a release of each.
public final class JSONPathSet: Sendable {
    /// One step of the trie. Its children are the edges `edgeStart..<edgeStart+edgeCount`
    /// (sorted by key length); answers and subtree answers are ranges of flat lists.
    struct Node: Sendable {
        var index = -1
        var edgeStart = 0, edgeCount = 0
        /// Row of `byLength` for this node (-1: no object children).
        var lengthRow = -1
        var slotStart = 0, slotCount = 0
        var subtreeStart = 0, subtreeCount = 0
    }

    static let lengths = 64

    let nodes: [Node]
    let edgeNode: [Int]
    let edgeKeyStart: [Int]
    let edgeKeyLength: [Int]
    let keyBytes: [UInt8]
    /// Per node with children, `lengths` entries: the first edge whose key has that length (-1: none).
    let byLength: [Int]
    let slotList: [Int]
    let subtreeList: [Int]
    /// How many paths (answers) there are.
    public let count: Int

    /// Answer `i` is `paths[i]`.
    public init(_ paths: [[JSONPathStep]]) {
        count = paths.count
        // Build as a tree of nested arrays first, then lay it out flat.
        final class Build {
            var step: JSONPathStep?
            var children: [Build] = []
            var slots: [Int] = []
            init(_ step: JSONPathStep?) { self.step = step }
        }
        let root = Build(nil)
        for (slot, path) in paths.enumerated() {
            var node = root
            for step in path {
                if let c = node.children.first(where: { $0.step == step }) {
                    node = c
                } else {
                    let c = Build(step)
                    node.children.append(c)
                    node = c
                }
            }
            node.slots.append(slot)
        }
        var order: [Build] = [root]
        var at = 0
        while at < order.count {
            order[at].children.sort { ($0.step?.key.count ?? 0) < ($1.step?.key.count ?? 0) }
            order += order[at].children
            at += 1
        }
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { (ObjectIdentifier($1), $0) })
        func subtree(_ b: Build) -> [Int] { b.slots + b.children.flatMap(subtree) }
        var nodes: [Node] = [], edgeNode: [Int] = [], edgeKeyStart: [Int] = [], edgeKeyLength: [Int] = [], keyBytes: [UInt8] = []
        var byLength: [Int] = [], slotList: [Int] = [], subtreeList: [Int] = []
        for b in order {
            var n = Node()
            n.index = b.step?.index ?? -1
            n.edgeStart = edgeNode.count
            n.edgeCount = b.children.count
            if !b.children.isEmpty {
                n.lengthRow = byLength.count
                byLength += Array(repeating: -1, count: Self.lengths)
            }
            for (k, c) in b.children.enumerated() {
                let key = c.step?.key ?? []
                edgeNode.append(position[ObjectIdentifier(c)]!)
                edgeKeyStart.append(keyBytes.count)
                edgeKeyLength.append(key.count)
                keyBytes += key
                if key.count < Self.lengths && byLength[n.lengthRow + key.count] < 0 { byLength[n.lengthRow + key.count] = n.edgeStart + k }
            }
            n.slotStart = slotList.count
            n.slotCount = b.slots.count
            slotList += b.slots
            let sub = subtree(b)
            n.subtreeStart = subtreeList.count
            n.subtreeCount = sub.count
            subtreeList += sub
            nodes.append(n)
        }
        (self.nodes, self.edgeNode, self.edgeKeyStart, self.edgeKeyLength, self.keyBytes) = (nodes, edgeNode, edgeKeyStart, edgeKeyLength, keyBytes)
        (self.byLength, self.slotList, self.subtreeList) = (byLength, slotList, subtreeList)
    }

    /// Sets `answers` (``count`` entries) to the token each path reaches from token `t`, or -1.
    public func resolve(_ tape: JSONTape, from t: Int, into answers: inout [Int], scratch: inout [UInt8]) {
        if answers.count != count { answers = Array(repeating: -1, count: count) }
        for i in 0..<count { answers[i] = -1 }
        guard count > 0 else { return }
        for s in nodes[0].slotStart..<(nodes[0].slotStart + nodes[0].slotCount) { answers[slotList[s]] = t }  // empty paths
        visit(0, t, tape, &answers, &scratch)
    }

    func visit(_ n: Int, _ t: Int, _ tape: JSONTape, _ answers: inout [Int], _ scratch: inout [UInt8]) {
        let node = nodes[n]
        guard node.edgeCount > 0 else { return }
        switch tape.kind(t) {
        case .object:
            var k = t + 1
            let end = tape.tokens[t].next
            while k < end {
                let v = k + 1
                let matched: Int?
                if tape.tokens[k].escaped {
                    scratch.removeAll(keepingCapacity: true)
                    JSONTape.unescape(tape.raw(k), into: &scratch)
                    matched = scratch.withUnsafeBytes { child(of: node, key: $0) }
                } else {
                    matched = child(of: node, key: tape.raw(k))
                }
                if let matched { take(matched, v, tape, &answers, &scratch) }
                k = tape.tokens[v].next
            }
        case .array:
            for e in node.edgeStart..<(node.edgeStart + node.edgeCount) {
                let c = edgeNode[e]
                let index = nodes[c].index
                guard index >= 0 else { continue }
                var el = t + 1
                var i = 0
                let end = tape.tokens[t].next
                while el < end && i < index {
                    el = tape.tokens[el].next
                    i += 1
                }
                if el < end { take(c, el, tape, &answers, &scratch) }
            }
        default:
            return
        }
    }

    /// Node `c` matched value `v`: what it answered before is forgotten, then it answers again.
    @inline(__always)
    func take(_ c: Int, _ v: Int, _ tape: JSONTape, _ answers: inout [Int], _ scratch: inout [UInt8]) {
        let child = nodes[c]
        if child.subtreeCount > child.slotCount {
            for s in child.subtreeStart..<(child.subtreeStart + child.subtreeCount) { answers[subtreeList[s]] = -1 }
        }
        for s in child.slotStart..<(child.slotStart + child.slotCount) { answers[slotList[s]] = v }
        if child.edgeCount > 0 { visit(c, v, tape, &answers, &scratch) }
    }

    /// The child of `node` whose step is `key` (children have distinct keys).
    @inline(__always)
    func child(of node: Node, key: UnsafeRawBufferPointer) -> Int? {
        let end = node.edgeStart + node.edgeCount
        var e: Int
        if key.count < Self.lengths {
            e = byLength[node.lengthRow + key.count]
            if e < 0 { return nil }
        } else {
            e = node.edgeStart
        }
        while e < end {
            let length = edgeKeyLength[e]
            if length > key.count { return nil }  // sorted by length: no longer one matches
            if length == key.count {
                let start = edgeKeyStart[e]
                var same = true
                for i in 0..<length where keyBytes[start + i] != key[i] {
                    same = false
                    break
                }
                if same { return edgeNode[e] }
            }
            e += 1
        }
        return nil
    }
}
