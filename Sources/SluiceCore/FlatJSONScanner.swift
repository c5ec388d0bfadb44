/// Reads one JSON object whose members are plain scalars — strings without escapes,
/// numbers, `true`, `false`, `null` — in one pass with no tape: for each wanted key, where its
/// value lies in the record. Anything else (an escape, a nested value, a key written twice,
/// input that is not such an object) answers "not flat", and the caller reads that record the
/// general way (``JSONTape``), which also words any error. What it accepts it checks as
/// strictly as the tape does (RFC 8259 numbers and literals, UTF-8, no control bytes).
public struct FlatJSONScanner: Sendable {
    public enum Kind: UInt8, Sendable { case missing, null, bool, number, string }
    /// A wanted member's value: bytes `start..<end` of the record (a string's without its
    /// quotes; a bool's first byte tells `t` from `f`).
    public struct Slot: Sendable {
        public var kind: Kind = .missing
        public var start = 0
        public var end = 0
    }

    let keys: [[UInt8]]
    public private(set) var slots: [Slot]
    /// Which key the member at each position was in the last record: the first guess.
    var guesses: [Int] = []
    /// The keys of the last record whose keys differed from the one before, as written, each
    /// followed by a 0 (never inside a plain key).
    public private(set) var recordKeys: [UInt8] = []
    /// Whether the record just read had other keys (or another order) than the one before.
    public private(set) var keysChanged = false
    /// How much of `recordKeys` the current record has matched so far.
    var keysMatched = 0

    public init(keys: [String]) {
        self.keys = keys.map { Array($0.utf8) }
        slots = Array(repeating: Slot(), count: keys.count)
    }

    /// Reads `b`; false when the record is not a flat object this scanner takes.
    public mutating func scan(_ b: UnsafeRawBufferPointer) -> Bool {
        for k in slots.indices { slots[k] = Slot() }
        keysChanged = false
        keysMatched = 0
        var i = 0
        JSONLex.skipSpace(b, &i)
        guard i < b.count, b[i] == UInt8(ascii: "{") else { return false }
        i += 1
        JSONLex.skipSpace(b, &i)
        var member = 0
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                guard i < b.count, b[i] == UInt8(ascii: "\""), let (ks, ke) = Self.plainString(b, &i) else { return false }
                let name = UnsafeRawBufferPointer(rebasing: b[ks..<ke])
                // The same key as the last record's here: its column is the one found then.
                let key = noteKey(name) ? (guesses[member] >= 0 ? guesses[member] : nil) : find(name, member)
                JSONLex.skipSpace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return false }
                i += 1
                JSONLex.skipSpace(b, &i)
                guard i < b.count else { return false }
                var slot = Slot()
                switch b[i] {
                case UInt8(ascii: "\""):
                    guard let (s, e) = Self.plainString(b, &i) else { return false }
                    slot = Slot(kind: .string, start: s, end: e)
                case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                    let start = i
                    let isNull = b[i] == UInt8(ascii: "n")
                    do throws(JSONParseError) {
                        try JSONLex.literal(isNull ? "null" : b[i] == UInt8(ascii: "t") ? "true" : "false", b, &i)
                    } catch { return false }
                    slot = Slot(kind: isNull ? .null : .bool, start: start, end: i)
                case UInt8(ascii: "-"), 48...57:
                    let start = i
                    do throws(JSONParseError) { try JSONLex.number(b, &i) } catch { return false }
                    slot = Slot(kind: .number, start: start, end: i)
                default:
                    return false  // a nested value, or not JSON
                }
                if let key {
                    guard slots[key].kind == .missing else { return false }  // written twice
                    slots[key] = slot
                }
                member += 1
                JSONLex.skipSpace(b, &i)
                guard i < b.count else { return false }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    JSONLex.skipSpace(b, &i)
                    continue
                }
                guard b[i] == UInt8(ascii: "}") else { return false }
                i += 1
                break
            }
        }
        JSONLex.skipSpace(b, &i)
        if !keysChanged && keysMatched != recordKeys.count {
            keysChanged = true
            recordKeys.removeSubrange(keysMatched...)
        }
        return i == b.count
    }

    /// Compares a key with the last record's at the same place, in place; from the first
    /// difference on, the record's keys are written out instead. True when it matched (the
    /// member's column is then the one `find` gave for it before: `guesses` holds it).
    @inline(__always) mutating func noteKey(_ key: UnsafeRawBufferPointer) -> Bool {
        if !keysChanged {
            let end = keysMatched + key.count
            if end < recordKeys.count, recordKeys[end] == 0,
               recordKeys.withUnsafeBytes({ Self.same(UnsafeRawBufferPointer(rebasing: $0[keysMatched..<end]), key) }) {
                keysMatched = end + 1
                return true
            }
            keysChanged = true
            recordKeys.removeSubrange(keysMatched...)
        }
        recordKeys.append(contentsOf: key)
        recordKeys.append(0)
        return false
    }

    /// The wanted key `name` is, trying first the key at this position in the last record.
    mutating func find(_ name: UnsafeRawBufferPointer, _ member: Int) -> Int? {
        if member < guesses.count, guesses[member] >= 0, Self.equal(keys[guesses[member]], name) { return guesses[member] }
        var found: Int? = nil
        for k in keys.indices where Self.equal(keys[k], name) { found = k; break }
        while guesses.count <= member { guesses.append(-1) }
        guesses[member] = found ?? -1
        return found
    }

    @inline(__always) static func equal(_ key: [UInt8], _ name: UnsafeRawBufferPointer) -> Bool {
        key.count == name.count && key.withUnsafeBytes { same($0, name) }
    }

    /// Whether two runs of bytes of the same length are equal: keys are short, and eight
    /// bytes at a time in line beat a call to `memcmp`.
    @inline(__always) static func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        var k = 0
        while k + 8 <= a.count {
            if a.loadUnaligned(fromByteOffset: k, as: UInt64.self) != b.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
            k += 8
        }
        while k < a.count {
            if a[k] != b[k] { return false }
            k += 1
        }
        return true
    }

    /// A string at `i` (its opening quote) with no escape and no control byte, in UTF-8:
    /// its contents' bounds, `i` past its closing quote. Nil otherwise (`i` is then undefined).
    static func plainString(_ b: UnsafeRawBufferPointer, _ i: inout Int) -> (Int, Int)? {
        i += 1
        let start = i
        var ascii = true
        JSONLex.skipPlain(b, &i, ascii: &ascii)
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }  // an escape, a control byte, or the end
        if !ascii && !Coercion.isValidUTF8(UnsafeRawBufferPointer(rebasing: b[start..<i])) { return nil }
        i += 1
        return (start, i - 1)
    }
}
