public import SluiceCore

/// Thrift's compact protocol, the encoding of Parquet's metadata. The reader never trusts a
/// length: every count and size is checked against the bytes that remain, and nesting is
/// bounded, so hostile metadata fails with an error instead of allocating or recursing.
public struct ThriftReader {
    public enum FieldType: UInt8 {
        case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7
        case binary = 8, list = 9, set = 10, map = 11, structure = 12
    }

    let base: UnsafeRawPointer
    public private(set) var position: Int
    let end: Int
    var depth = 0
    let what: String
    static let maxDepth = 64

    /// Reads from `bytes`, which must outlive the reader. `what` names the structure in errors.
    public init(_ bytes: UnsafeRawBufferPointer, what: String) {
        base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        position = 0
        end = bytes.count
        self.what = what
    }

    public var remaining: Int { end - position }

    func fail(_ message: String) -> SluiceError {
        SluiceError(.malformedFile, "\(what): \(message) (at byte \(position))")
    }

    public mutating func byte() throws(SluiceError) -> UInt8 {
        guard position < end else { throw fail("truncated") }
        let b = base.load(fromByteOffset: position, as: UInt8.self)
        position += 1
        return b
    }

    public mutating func varint() throws(SluiceError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
            if shift > 63 { throw fail("varint too long") }
        }
    }

    public mutating func zigzag() throws(SluiceError) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    public mutating func i32() throws(SluiceError) -> Int32 {
        let v = try zigzag()
        guard let r = Int32(exactly: v) else { throw fail("value \(v) does not fit 32 bits") }
        return r
    }

    public mutating func i64() throws(SluiceError) -> Int64 { try zigzag() }

    public mutating func double() throws(SluiceError) -> Double {
        guard remaining >= 8 else { throw fail("truncated") }
        let v = base.loadUnaligned(fromByteOffset: position, as: UInt64.self)
        position += 8
        return Double(bitPattern: UInt64(littleEndian: v))
    }

    public mutating func binary() throws(SluiceError) -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(remaining) else { throw fail("a \(n)-byte value runs past the end") }
        let out = Array(UnsafeRawBufferPointer(start: base + position, count: Int(n)))
        position += Int(n)
        return out
    }

    public mutating func string() throws(SluiceError) -> String {
        String(decoding: try binary(), as: UTF8.self)
    }

    /// Reads a list header: element type and count (bounded by the remaining bytes).
    public mutating func listHeader() throws(SluiceError) -> (FieldType, Int) {
        let h = try byte()
        var n = UInt64(h >> 4)
        if n == 15 { n = try varint() }
        guard let t = FieldType(rawValue: h & 0x0F) else { throw fail("unknown list element type \(h & 0x0F)") }
        guard n <= UInt64(remaining) else { throw fail("a list of \(n) elements runs past the end") }
        return (t, Int(n))
    }

    /// Reads a list, calling `element` once per item.
    public mutating func list(_ element: (inout ThriftReader, FieldType) throws(SluiceError) -> Void) throws(SluiceError) {
        let (t, n) = try listHeader()
        for _ in 0..<n { try element(&self, t) }
    }

    /// Reads a struct: `field` is called with each field's id and type, and returns false to
    /// have the field skipped.
    public mutating func structure(_ field: (inout ThriftReader, Int16, FieldType) throws(SluiceError) -> Bool) throws(SluiceError) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
        var last: Int16 = 0
        while true {
            let h = try byte()
            if h == 0 { return }
            guard let t = FieldType(rawValue: h & 0x0F), t != .stop else { throw fail("unknown field type \(h & 0x0F)") }
            let delta = Int16(h >> 4)
            let id: Int16
            if delta == 0 {
                let v = try zigzag()
                guard let i = Int16(exactly: v) else { throw fail("field id \(v) out of range") }
                id = i
            } else {
                id = last &+ delta
            }
            last = id
            if try !field(&self, id, t) { try skip(t) }
        }
    }

    /// Reads a bool field's value (compact protocol puts it in the field type).
    public func bool(_ t: FieldType) -> Bool { t == .boolTrue }

    /// Skips a value of type `t`.
    public mutating func skip(_ t: FieldType) throws(SluiceError) {
        switch t {
        case .stop: throw fail("unexpected stop")
        case .boolTrue, .boolFalse: return
        case .byte: _ = try byte()
        case .i16, .i32, .i64: _ = try varint()
        case .double:
            guard remaining >= 8 else { throw fail("truncated") }
            position += 8
        case .binary:
            let n = try varint()
            guard n <= UInt64(remaining) else { throw fail("a \(n)-byte value runs past the end") }
            position += Int(n)
        case .list, .set:
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
            let (et, n) = try listHeader()
            for _ in 0..<n {
                if et == .boolTrue || et == .boolFalse { _ = try byte() } else { try skip(et) }
            }
        case .map:
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
            let n = try varint()
            guard n <= UInt64(remaining) else { throw fail("a map of \(n) entries runs past the end") }
            if n == 0 { return }
            let kv = try byte()
            guard let kt = FieldType(rawValue: kv >> 4), let vt = FieldType(rawValue: kv & 0x0F) else { throw fail("unknown map types") }
            for _ in 0..<n {
                if kt == .boolTrue || kt == .boolFalse { _ = try byte() } else { try skip(kt) }
                if vt == .boolTrue || vt == .boolFalse { _ = try byte() } else { try skip(vt) }
            }
        case .structure:
            try structure { _, _, _ in false }
        }
    }

    /// Expects field type `want`, else an error naming the field.
    public func expect(_ t: FieldType, _ want: FieldType, _ name: String) throws(SluiceError) {
        guard t == want || (want == .boolTrue && t == .boolFalse) else { throw fail("field \(name) has type \(t), expected \(want)") }
    }
}

/// Writes Thrift's compact protocol (Parquet footers and page headers).
public struct ThriftWriter {
    public var bytes: [UInt8] = []
    var lastField: [Int16] = [0]

    public init() {}

    public mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    public mutating func zigzag(_ v: Int64) { varint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    mutating func fieldHeader(_ id: Int16, _ t: ThriftReader.FieldType) {
        let last = lastField[lastField.count - 1]
        let delta = id - last
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | t.rawValue)
        } else {
            bytes.append(t.rawValue)
            zigzag(Int64(id))
        }
        lastField[lastField.count - 1] = id
    }

    public mutating func field(_ id: Int16, i32 v: Int32) { fieldHeader(id, .i32); zigzag(Int64(v)) }
    public mutating func field(_ id: Int16, i64 v: Int64) { fieldHeader(id, .i64); zigzag(v) }
    public mutating func field(_ id: Int16, byte v: Int8) { fieldHeader(id, .byte); bytes.append(UInt8(bitPattern: v)) }
    public mutating func field(_ id: Int16, bool v: Bool) { fieldHeader(id, v ? .boolTrue : .boolFalse) }
    public mutating func field(_ id: Int16, binary v: some Collection<UInt8>) {
        fieldHeader(id, .binary)
        varint(UInt64(v.count))
        bytes.append(contentsOf: v)
    }
    public mutating func field(_ id: Int16, string v: String) { field(id, binary: Array(v.utf8)) }

    /// A struct field whose body `body` writes.
    public mutating func field(_ id: Int16, struct body: (inout ThriftWriter) -> Void) {
        fieldHeader(id, .structure)
        structBody(body)
    }

    /// A struct's fields and its stop byte (for list elements and the top level).
    public mutating func structBody(_ body: (inout ThriftWriter) -> Void) {
        lastField.append(0)
        body(&self)
        bytes.append(0)
        lastField.removeLast()
    }

    public mutating func listHeader(_ id: Int16, _ t: ThriftReader.FieldType, count: Int) {
        fieldHeader(id, .list)
        if count < 15 {
            bytes.append(UInt8(count) << 4 | t.rawValue)
        } else {
            bytes.append(0xF0 | t.rawValue)
            varint(UInt64(count))
        }
    }

    public mutating func field(_ id: Int16, i32List v: [Int32]) {
        listHeader(id, .i32, count: v.count)
        for x in v { zigzag(Int64(x)) }
    }

    public mutating func field(_ id: Int16, stringList v: [String]) {
        listHeader(id, .binary, count: v.count)
        for s in v { varint(UInt64(s.utf8.count)); bytes.append(contentsOf: s.utf8) }
    }

    public mutating func field<T>(_ id: Int16, structList v: [T], _ body: (inout ThriftWriter, T) -> Void) {
        listHeader(id, .structure, count: v.count)
        for x in v { structBody { body(&$0, x) } }
    }
}
