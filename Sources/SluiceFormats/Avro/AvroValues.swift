import SluiceCore

/// How one Avro value is decoded into a column of its Sluice type, compiled once from the
/// schema so the per-row work is a switch, not a walk of the schema.
indirect enum AvroPlan {
    case nullable(nullIndex: Int64, AvroPlan)
    case boolean, int, long, float, double, text, bytes
    case fixed(Int)
    case enumeration([[UInt8]])
    case decimalBytes(scale: Int), decimalFixed(size: Int, scale: Int)
    case decimalBytesText(scale: Int), decimalFixedText(size: Int, scale: Int)
    case uuidString, uuidFixed
    case millisToMicros(int: Bool)
    case json(AvroSchema)
    case null

    init(_ s: AvroSchema) {
        if let (v, i) = s.nullableBranch {
            self = .nullable(nullIndex: Int64(i), AvroPlan(v))
            return
        }
        let text = s.columnType == .text
        switch (s.logical, s.kind) {
        case (.decimal(_, let sc)?, .bytes): self = text ? .decimalBytesText(scale: sc) : .decimalBytes(scale: sc)
        case (.decimal(_, let sc)?, .fixed(_, let n)): self = text ? .decimalFixedText(size: n, scale: sc) : .decimalFixed(size: n, scale: sc)
        case (.uuid?, .string): self = .uuidString
        case (.json?, .string): self = .text
        case (.uuid?, .fixed): self = .uuidFixed
        case (.timeMillis?, _): self = .millisToMicros(int: true)
        case (.timestampMillis?, _), (.localTimestampMillis?, _): self = .millisToMicros(int: false)
        case (_, .null): self = .null
        case (_, .boolean): self = .boolean
        case (_, .int): self = .int
        case (_, .long): self = .long
        case (_, .float): self = .float
        case (_, .double): self = .double
        case (_, .string): self = .text
        case (_, .bytes): self = .bytes
        case (_, .fixed(_, let n)): self = .fixed(n)
        case (_, .enumeration(_, let syms)): self = .enumeration(syms.map { Array($0.utf8) })
        case (_, .record), (_, .array), (_, .map), (_, .union): self = .json(s)
        }
    }
}

/// Decodes Avro binary values: into typed columns, as JSON text for nested values, or
/// skipped. Nesting is bounded by depth, whatever a recursive schema allows.
enum AvroValues {
    static let maxDepth = 64

    static func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, m) }

    static func read(_ plan: AvroPlan, _ c: inout AvroCursor, into col: inout Column, scratch: inout [UInt8]) throws(SluiceError) {
        switch plan {
        case .nullable(let ni, let inner):
            let b = try c.long()
            if b == ni { col.appendNull(); return }
            guard b == 1 - ni else { throw fail("union branch \(b) of 2") }
            try read(inner, &c, into: &col, scratch: &scratch)
        case .null: col.appendNull()
        case .boolean: col.append(int: try c.boolean() ? 1 : 0)
        case .int: col.append(int: try c.int())
        case .long: col.append(int: try c.long())
        case .float: col.append(double: try c.float())
        case .double: col.append(double: try c.double())
        case .text, .bytes: col.append(bytes: try c.bytes())
        case .fixed(let n): col.append(bytes: try c.take(n))
        case .enumeration(let syms):
            let i = try c.int()
            guard i >= 0 && Int(i) < syms.count else { throw fail("enum index \(i) of \(syms.count) symbols") }
            col.append(bytes: syms[Int(i)])
        case .decimalBytes(let s): col.append(decimal: try decimal(try c.bytes(), scale: s))
        case .decimalFixed(let n, let s): col.append(decimal: try decimal(try c.take(n), scale: s))
        case .decimalBytesText(let s): col.append(bytes: Array(try decimalText(try c.bytes(), scale: s).utf8))
        case .decimalFixedText(let n, let s): col.append(bytes: Array(try decimalText(try c.take(n), scale: s).utf8))
        case .uuidString:
            let raw = try c.bytes()
            guard Coercion.parseUUID(raw, into: &col.data) else { throw fail("invalid uuid '\(SourceLocation.excerpt(String(decoding: raw, as: UTF8.self)))'") }
            col.offsets.append(col.data.count)
            col.validity.append(true)
        case .uuidFixed: col.append(bytes: try c.take(16))
        case .millisToMicros(let isInt):
            let v = isInt ? try c.int() : try c.long()
            let (m, o) = v.multipliedReportingOverflow(by: 1000)
            guard !o else { throw fail("millisecond value \(v) is out of range") }
            col.append(int: m)
        case .json(let s):
            scratch.removeAll(keepingCapacity: true)
            try writeJSON(s, &c, into: &scratch, depth: 0)
            col.append(bytes: scratch)
        }
    }

    static func decimal(_ b: UnsafeRawBufferPointer, scale: Int) throws(SluiceError) -> ExactDecimal {
        guard let v = ParquetValueDecoder.bigEndianInt128(b) else { throw fail("decimal of \(b.count) bytes does not fit 128 bits") }
        return ExactDecimal(significand: v, scale: Int16(scale))
    }

    static func decimalText(_ b: UnsafeRawBufferPointer, scale: Int) throws(SluiceError) -> String {
        guard b.count <= 128 else { throw fail("decimal of \(b.count) bytes is longer than 128") }
        return ParquetValueDecoder.decimalText(b, scale: scale)
    }

    /// Writes one value as JSON: records and maps as objects, arrays as arrays, a union as
    /// its branch's value, bytes as base64, logical types as their text.
    static func writeJSON(_ s: AvroSchema, _ c: inout AvroCursor, into out: inout [UInt8], depth: Int) throws(SluiceError) {
        guard depth < maxDepth else { throw fail("values nest deeper than \(maxDepth) levels") }
        switch s.kind {
        case .record(_, let fields):
            out.append(UInt8(ascii: "{"))
            for (k, f) in fields.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(bytes: f.name.utf8, into: &out)
                out.append(UInt8(ascii: ":"))
                try writeJSON(f.type, &c, into: &out, depth: depth + 1)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let items):
            out.append(UInt8(ascii: "["))
            try eachItem(&c) { (c, first) throws(SluiceError) in
                if !first { out.append(UInt8(ascii: ",")) }
                try writeJSON(items, &c, into: &out, depth: depth + 1)
            }
            out.append(UInt8(ascii: "]"))
        case .map(let values):
            out.append(UInt8(ascii: "{"))
            try eachItem(&c) { (c, first) throws(SluiceError) in
                if !first { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(bytes: try c.bytes(), into: &out)
                out.append(UInt8(ascii: ":"))
                try writeJSON(values, &c, into: &out, depth: depth + 1)
            }
            out.append(UInt8(ascii: "}"))
        case .union(let branches):
            let b = try c.long()
            guard b >= 0 && b < Int64(branches.count) else { throw fail("union branch \(b) of \(branches.count)") }
            try writeJSON(branches[Int(b)], &c, into: &out, depth: depth + 1)
        case .null:
            out.append(contentsOf: "null".utf8)
        default:
            // A scalar: decode it as its column type, then render that as JSON.
            var col = Column(type: s.columnType, capacity: 1)
            var none: [UInt8] = []
            try read(AvroPlan(s), &c, into: &col, scratch: &none)
            ValueText.json(col, 0, into: &out)
        }
    }

    /// Calls `body` for each item of an array or map, block by block; `first` is true once.
    static func eachItem(_ c: inout AvroCursor, _ body: (inout AvroCursor, Bool) throws(SluiceError) -> Void) throws(SluiceError) {
        var first = true
        while true {
            let n = try c.blockCount()
            if n == 0 { return }
            for _ in 0..<n {
                try body(&c, first)
                first = false
            }
        }
    }

    /// Moves past one value without decoding it (a field no column reads).
    static func skip(_ s: AvroSchema, _ c: inout AvroCursor, depth: Int) throws(SluiceError) {
        guard depth < maxDepth else { throw fail("values nest deeper than \(maxDepth) levels") }
        switch s.kind {
        case .null: break
        case .boolean: _ = try c.take(1)
        case .int, .long, .enumeration: _ = try c.long()
        case .float: _ = try c.take(4)
        case .double: _ = try c.take(8)
        case .bytes, .string: _ = try c.bytes()
        case .fixed(_, let n): _ = try c.take(n)
        case .record(_, let fields): for f in fields { try skip(f.type, &c, depth: depth + 1) }
        case .array(let items):
            try eachItem(&c) { (c, _) throws(SluiceError) in try skip(items, &c, depth: depth + 1) }
        case .map(let values):
            try eachItem(&c) { (c, _) throws(SluiceError) in
                _ = try c.bytes()
                try skip(values, &c, depth: depth + 1)
            }
        case .union(let branches):
            let b = try c.long()
            guard b >= 0 && b < Int64(branches.count) else { throw fail("union branch \(b) of \(branches.count)") }
            try skip(branches[Int(b)], &c, depth: depth + 1)
        }
    }
}
