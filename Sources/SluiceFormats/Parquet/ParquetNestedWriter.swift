public import SluiceCore

/// A field of a nested Parquet schema (structs, maps, lists), for ``ParquetNestedWriter``.
public final class ParquetField: Sendable {
    public enum Kind: Sendable {
        case leaf(Parquet.PhysicalType, logical: Parquet.LogicalType?, converted: Parquet.ConvertedType?)
        case group([ParquetField], converted: Parquet.ConvertedType?)
    }

    public let name: String
    public let repetition: Parquet.Repetition
    public let kind: Kind

    public init(_ name: String, _ repetition: Parquet.Repetition, _ kind: Kind) {
        self.name = name
        self.repetition = repetition
        self.kind = kind
    }

    /// An optional UTF-8 string, int64, int32 or boolean leaf.
    public static func string(_ name: String, _ r: Parquet.Repetition = .optional) -> ParquetField { ParquetField(name, r, .leaf(.byteArray, logical: .string, converted: .utf8)) }
    public static func int64(_ name: String) -> ParquetField { ParquetField(name, .optional, .leaf(.int64, logical: nil, converted: nil)) }
    public static func int32(_ name: String) -> ParquetField { ParquetField(name, .optional, .leaf(.int32, logical: nil, converted: nil)) }
    public static func bool(_ name: String) -> ParquetField { ParquetField(name, .optional, .leaf(.boolean, logical: nil, converted: nil)) }
    public static func group(_ name: String, _ children: [ParquetField]) -> ParquetField { ParquetField(name, .optional, .group(children, converted: nil)) }

    /// A map of strings to strings (the standard three-level layout).
    public static func stringMap(_ name: String) -> ParquetField {
        ParquetField(name, .optional, .group([ParquetField("key_value", .repeated, .group([string("key", .required), string("value")], converted: nil))], converted: .map))
    }

    /// A list of strings (the standard three-level layout).
    public static func stringList(_ name: String) -> ParquetField {
        ParquetField(name, .optional, .group([ParquetField("list", .repeated, .group([string("element")], converted: nil))], converted: .list))
    }
}

/// Writes rows of nested values (JSON documents shaped by a ``ParquetField`` schema) as one
/// row group of plain, uncompressed pages: enough for small metadata files such as Delta
/// checkpoints, which readers expect as structs, maps and lists. Maps are JSON objects, lists
/// JSON arrays; a missing or `null` member is NULL.
public struct ParquetNestedWriter {
    struct Leaf {
        let path: [String]
        let physical: Parquet.PhysicalType
        let maxDef: Int
        let maxRep: Int
        var reps: [Int32] = []
        var defs: [Int32] = []
        var values: [UInt8] = []
        var bits: [Bool] = []
        var count = 0
    }

    let fields: [ParquetField]
    var leaves: [Leaf] = []
    var rows: Int64 = 0

    /// Maps and lists may sit in groups but not in one another (one repetition level).
    public init(fields: [ParquetField]) throws(SluiceError) {
        self.fields = fields
        func collect(_ f: ParquetField, _ path: [String], _ def: Int, _ rep: Int) {
            let d = def + (f.repetition == .required ? 0 : 1)
            let r = rep + (f.repetition == .repeated ? 1 : 0)
            switch f.kind {
            case .leaf(let t, _, _): leaves.append(Leaf(path: path + [f.name], physical: t, maxDef: d, maxRep: r))
            case .group(let children, _): for c in children { collect(c, path + [f.name], d, r) }
            }
        }
        for f in fields { collect(f, [], 0, 0) }
        if let deep = leaves.first(where: { $0.maxRep > 1 }) {
            throw SluiceError(.unsupported, "'\(deep.path.joined(separator: "."))' repeats inside a repeated field, which this writer does not nest")
        }
    }

    /// Adds one row: a JSON object whose members are the top-level fields.
    public mutating func append(_ row: JSONValue) throws(SluiceError) {
        var leaf = 0
        for f in fields { try write(f, row[f.name], rep: 0, def: 0, leaf: &leaf) }
        rows += 1
    }

    /// The number of leaves under `f`.
    static func leafCount(_ f: ParquetField) -> Int {
        switch f.kind {
        case .leaf: 1
        case .group(let c, _): c.reduce(0) { $0 + leafCount($1) }
        }
    }

    mutating func nulls(_ f: ParquetField, rep: Int, def: Int, leaf: inout Int) {
        for k in leaf..<(leaf + Self.leafCount(f)) {
            leaves[k].reps.append(Int32(rep))
            leaves[k].defs.append(Int32(def))
        }
        leaf += Self.leafCount(f)
    }

    mutating func write(_ f: ParquetField, _ value: JSONValue?, rep: Int, def: Int, leaf: inout Int) throws(SluiceError) {
        let present = value != nil && value != .null
        if f.repetition == .repeated {
            // The items of a repeated group: a map's entries or a list's elements.
            var items: [JSONValue] = []
            if case .group(let c, _) = f.kind, present {
                switch value! {
                case .object(let members) where c.count == 2: items = members.map { .object([JSONMember(key: c[0].name, value: .string($0.key)), JSONMember(key: c[1].name, value: $0.value)]) }
                case .array(let elements) where c.count == 1: items = elements.map { .object([JSONMember(key: c[0].name, value: $0)]) }
                default: throw SluiceError(.invalidInput, "'\(f.name)' takes an object (a map) or an array (a list)")
                }
            }
            guard !items.isEmpty else { return nulls(f, rep: rep, def: def, leaf: &leaf) }
            let start = leaf
            for (i, item) in items.enumerated() {
                leaf = start
                // Items after the first repeat at this field's level: 1, as nothing repeats above it.
                try descend(f, item, rep: i == 0 ? rep : 1, def: def + 1, leaf: &leaf)
            }
            return
        }
        if !present {
            guard f.repetition == .optional else { throw SluiceError(.invalidInput, "required field '\(f.name)' is missing") }
            return nulls(f, rep: rep, def: def, leaf: &leaf)
        }
        try descend(f, value!, rep: rep, def: def + (f.repetition == .optional ? 1 : 0), leaf: &leaf)
    }

    mutating func descend(_ f: ParquetField, _ value: JSONValue, rep: Int, def: Int, leaf: inout Int) throws(SluiceError) {
        switch f.kind {
        case .group(let children, let converted):
            // A map's or list's repeated group takes the whole object or array.
            if converted == .map || converted == .list { return try write(children[0], value, rep: rep, def: def, leaf: &leaf) }
            for c in children { try write(c, value[c.name], rep: rep, def: def, leaf: &leaf) }
        case .leaf(let t, _, _):
            leaves[leaf].reps.append(Int32(rep))
            leaves[leaf].defs.append(Int32(def))
            leaves[leaf].count += 1
            switch (t, value) {
            case (.int64, .number(let n)):
                guard let v = Int64(n) else { throw SluiceError(.invalidInput, "'\(f.name)' takes an integer, not \(n)") }
                withUnsafeBytes(of: v.littleEndian) { leaves[leaf].values += $0 }
            case (.int32, .number(let n)):
                guard let v = Int32(n) else { throw SluiceError(.invalidInput, "'\(f.name)' takes a 32-bit integer, not \(n)") }
                withUnsafeBytes(of: v.littleEndian) { leaves[leaf].values += $0 }
            case (.boolean, .bool(let b)): leaves[leaf].bits.append(b)
            case (.byteArray, .string(let s)):
                let n = UInt32(s.utf8.count)
                withUnsafeBytes(of: n.littleEndian) { leaves[leaf].values += $0 }
                leaves[leaf].values += Array(s.utf8)
            default: throw SluiceError(.invalidInput, "'\(f.name)' has a value of the wrong type: \(SourceLocation.excerpt(value.text))")
            }
            leaf += 1
        }
    }

    /// The whole file: magic, one data page per leaf, the footer.
    public func bytes() -> [UInt8] {
        var out = Parquet.magic
        var group = Parquet.RowGroup()
        group.numRows = rows
        for l in leaves {
            var raw: [UInt8] = []
            func levels(_ v: [Int32], max: Int) {
                guard max > 0 else { return }
                var enc: [UInt8] = []
                v.withUnsafeBufferPointer { ParquetEncoding.encodeHybrid($0, bitWidth: ParquetEncoding.bitWidth(max), into: &enc) }
                withUnsafeBytes(of: UInt32(enc.count).littleEndian) { raw += $0 }
                raw += enc
            }
            levels(l.reps, max: l.maxRep)
            levels(l.defs, max: l.maxDef)
            if l.physical == .boolean {
                var byte: UInt8 = 0
                for (i, b) in l.bits.enumerated() {
                    if b { byte |= 1 << (i % 8) }
                    if i % 8 == 7 { raw.append(byte); byte = 0 }
                }
                if l.bits.count % 8 != 0 { raw.append(byte) }
            } else {
                raw += l.values
            }
            var h = Parquet.PageHeader()
            h.type = Parquet.PageType.dataPage.rawValue
            h.uncompressedSize = Int32(raw.count)
            h.compressedSize = Int32(raw.count)
            var d = Parquet.DataPageHeader()
            d.numValues = Int32(l.defs.count)
            d.encoding = Parquet.Encoding.plain.rawValue
            d.definitionLevelEncoding = Parquet.Encoding.rle.rawValue
            d.repetitionLevelEncoding = Parquet.Encoding.rle.rawValue
            h.dataPage = d
            let page = Parquet.encode(h) + raw
            var meta = Parquet.ColumnMetaData()
            meta.type = l.physical
            meta.path = l.path
            meta.codec = .uncompressed
            meta.encodings = [Parquet.Encoding.plain.rawValue, Parquet.Encoding.rle.rawValue]
            meta.numValues = Int64(l.defs.count)
            meta.totalUncompressedSize = Int64(page.count)
            meta.totalCompressedSize = Int64(page.count)
            meta.dataPageOffset = Int64(out.count)
            var chunk = Parquet.ColumnChunk()
            chunk.fileOffset = Int64(out.count)
            chunk.meta = meta
            group.columns.append(chunk)
            group.totalByteSize += Int64(page.count)
            out += page
        }
        var meta = Parquet.FileMetaData()
        meta.version = 1
        var root = Parquet.SchemaElement()
        root.name = "schema"
        root.numChildren = Int32(fields.count)
        meta.schema = [root] + fields.flatMap(Self.elements)
        meta.numRows = rows
        meta.rowGroups = [group]
        meta.createdBy = "sluice version 0.1.0"
        var footer = Parquet.encode(meta)
        withUnsafeBytes(of: UInt32(footer.count).littleEndian) { footer += $0 }
        return out + footer + Parquet.magic
    }

    /// The schema elements of `f` and its children, depth first.
    static func elements(_ f: ParquetField) -> [Parquet.SchemaElement] {
        var e = Parquet.SchemaElement()
        e.name = f.name
        e.repetition = f.repetition
        switch f.kind {
        case .leaf(let t, let logical, let converted):
            e.type = t
            e.logicalType = logical
            e.convertedType = converted
            return [e]
        case .group(let children, let converted):
            e.numChildren = Int32(children.count)
            e.convertedType = converted
            e.logicalType = converted == .map ? .map : converted == .list ? .list : nil
            return [e] + children.flatMap(elements)
        }
    }
}
