public import SluiceCore

/// A Parquet schema as a tree, with each leaf's definition and repetition levels, and the
/// Sluice type each top-level field reads as: primitives map to their logical type, nested
/// fields (structs, lists, maps) to one json column.
public struct ParquetSchema: Sendable {
    public final class Node: Sendable {
        public let element: Parquet.SchemaElement
        public let children: [Node]
        /// Index into ``ParquetSchema/leaves`` for primitive nodes.
        public let leafIndex: Int?
        public let maxDef: Int
        public let maxRep: Int
        public let path: [String]

        init(element: Parquet.SchemaElement, children: [Node], leafIndex: Int?, maxDef: Int, maxRep: Int, path: [String]) {
            self.element = element
            self.children = children
            self.leafIndex = leafIndex
            self.maxDef = maxDef
            self.maxRep = maxRep
            self.path = path
        }

        public var name: String { element.name }
        public var isLeaf: Bool { leafIndex != nil }
        public var repetition: Parquet.Repetition { element.repetition ?? .required }
        /// Whether this node or anything below it repeats (so it reads as JSON).
        public var isNested: Bool { !isLeaf || repetition == .repeated }
    }

    public struct Leaf: Sendable {
        public var path: [String]
        public var element: Parquet.SchemaElement
        public var maxDef: Int
        public var maxRep: Int
        /// How its values become a Sluice column.
        public var mapping: ParquetValueMapping
    }

    public let root: Node
    public let leaves: [Leaf]

    /// Builds the tree from the footer's depth-first element list.
    public init(_ elements: [Parquet.SchemaElement], fileName: String?) throws(SluiceError) {
        guard let first = elements.first else { throw SluiceError(.malformedFile, "Parquet schema is empty", at: SourceLocation(file: fileName)) }
        var leaves: [Leaf] = []
        var next = 1
        func build(_ e: Parquet.SchemaElement, def: Int, rep: Int, path: [String], depth: Int) throws(SluiceError) -> Node {
            guard depth < 64 else { throw SluiceError(.malformedFile, "Parquet schema nests deeper than 64 levels", at: SourceLocation(file: fileName)) }
            let children = Int(e.numChildren ?? 0)
            if e.type == nil || children > 0 {
                guard children >= 0, children <= elements.count - next else {
                    throw SluiceError(.malformedFile, "Parquet schema element '\(e.name)' claims \(children) children, more than the schema holds", at: SourceLocation(file: fileName))
                }
                var kids: [Node] = []
                for _ in 0..<children {
                    guard next < elements.count else {
                        throw SluiceError(.malformedFile, "Parquet schema element '\(e.name)' claims more children than the schema holds", at: SourceLocation(file: fileName))
                    }
                    let c = elements[next]
                    next += 1
                    let r = c.repetition ?? .required
                    kids.append(try build(c, def: def + (r == .required ? 0 : 1), rep: rep + (r == .repeated ? 1 : 0), path: path + [c.name], depth: depth + 1))
                }
                return Node(element: e, children: kids, leafIndex: nil, maxDef: def, maxRep: rep, path: path)
            }
            let mapping = try ParquetValueMapping(e, fileName: fileName)
            leaves.append(Leaf(path: path, element: e, maxDef: def, maxRep: rep, mapping: mapping))
            return Node(element: e, children: [], leafIndex: leaves.count - 1, maxDef: def, maxRep: rep, path: path)
        }
        var rootElement = first
        if rootElement.numChildren == nil { rootElement.numChildren = 0 }
        root = try build(rootElement, def: 0, rep: 0, path: [], depth: 0)
        guard next == elements.count else {
            throw SluiceError(.malformedFile, "Parquet schema has \(elements.count - next) elements outside its tree", at: SourceLocation(file: fileName))
        }
        self.leaves = leaves
    }

    /// The top-level fields as Sluice columns (name and type).
    public var columns: [ColumnSchema] {
        root.children.map { ColumnSchema(name: $0.name, type: Self.type(of: $0), nullable: true) }
    }

    /// The type a top-level (or dotted-path) node reads as.
    public static func type(of node: Node) -> ColumnType {
        if node.isNested { return .json }
        return node.leafIndex != nil ? (try? ParquetValueMapping(node.element, fileName: nil).type) ?? .bytes : .json
    }

    /// The node a source field names: a top-level field, or a dotted path through
    /// non-repeated groups (`customer.address.city`).
    public func node(named field: String) -> Node? {
        if let n = root.children.first(where: { $0.name == field }) { return n }
        var node = root
        for part in field.split(separator: ".", omittingEmptySubsequences: false) {
            guard !node.isLeaf, node.repetition != .repeated, let c = node.children.first(where: { $0.name == part }) else { return nil }
            node = c
        }
        return node === root ? nil : node
    }

    /// Leaf indices under `node`, in schema order.
    public static func leafIndices(_ node: Node) -> [Int] {
        if let i = node.leafIndex { return [i] }
        return node.children.flatMap { leafIndices($0) }
    }
}

/// How one primitive column's physical values become a Sluice column type.
public struct ParquetValueMapping: Sendable {
    public enum Kind: Sendable, Equatable {
        case bool
        case int32, uint32, int64
        case uint64AsDecimal
        case date32
        case timeMillis32, timeMicros64, timeNanos64
        case timestampMillis, timestampMicros, timestampNanos
        case int96Timestamp
        case float32, double, float16
        case decimalInt32(scale: Int), decimalInt64(scale: Int), decimalBinary(scale: Int), decimalBinaryAsText(scale: Int)
        case string, json, binary, uuid
    }

    public var kind: Kind
    public var type: ColumnType
    public var physical: Parquet.PhysicalType
    public var fixedLength: Int

    public init(_ e: Parquet.SchemaElement, fileName: String?) throws(SluiceError) {
        guard let physical = e.type else { throw SluiceError(.malformedFile, "Parquet column '\(e.name)' has no type", at: SourceLocation(file: fileName)) }
        self.physical = physical
        fixedLength = Int(e.typeLength ?? 0)
        if physical == .fixedLenByteArray {
            guard fixedLength > 0 && fixedLength <= 1 << 20 else {
                throw SluiceError(.malformedFile, "Parquet column '\(e.name)' has fixed length \(fixedLength)", at: SourceLocation(file: fileName))
            }
        }
        func decimal(_ scale: Int32, _ precision: Int32) throws(SluiceError) -> (Kind, ColumnType) {
            guard precision >= 1, scale >= 0, scale <= precision else {
                throw SluiceError(.malformedFile, "Parquet column '\(e.name)' has decimal(\(precision),\(scale))", at: SourceLocation(file: fileName))
            }
            let s = Int(scale)
            if precision > Int32(ColumnType.maxDecimalPrecision) { return (.decimalBinaryAsText(scale: s), .text) }
            let t = ColumnType.decimal(precision: Int(precision), scale: s)
            switch physical {
            case .int32: return (.decimalInt32(scale: s), t)
            case .int64: return (.decimalInt64(scale: s), t)
            case .byteArray, .fixedLenByteArray: return (.decimalBinary(scale: s), t)
            default: throw SluiceError(.malformedFile, "Parquet column '\(e.name)': decimal on \(physical)", at: SourceLocation(file: fileName))
            }
        }
        var logical = e.logicalType
        if logical == nil, let c = e.convertedType {
            switch c {
            case .utf8: logical = .string
            case .enumeration: logical = .enumeration
            case .json: logical = .json
            case .bson: logical = .bson
            case .date: logical = .date
            case .decimal: logical = .decimal(scale: e.scale ?? 0, precision: e.precision ?? 0)
            case .timeMillis: logical = .time(utc: true, unit: .millis)
            case .timeMicros: logical = .time(utc: true, unit: .micros)
            case .timestampMillis: logical = .timestamp(utc: true, unit: .millis)
            case .timestampMicros: logical = .timestamp(utc: true, unit: .micros)
            case .uint8: logical = .integer(bitWidth: 8, signed: false)
            case .uint16: logical = .integer(bitWidth: 16, signed: false)
            case .uint32: logical = .integer(bitWidth: 32, signed: false)
            case .uint64: logical = .integer(bitWidth: 64, signed: false)
            default: break
            }
        }
        let k: (Kind, ColumnType)
        switch (physical, logical) {
        case (.boolean, _): k = (.bool, .bool)
        case (.int32, .date?): k = (.date32, .date)
        case (.int32, .decimal(let s, let p)?), (.int64, .decimal(let s, let p)?), (.byteArray, .decimal(let s, let p)?),
             (.fixedLenByteArray, .decimal(let s, let p)?):
            k = try decimal(s, p)
        case (.int32, .time?): k = (.timeMillis32, .time)
        case (.int32, .integer(_, false)?): k = (.uint32, .int64)
        case (.int32, _): k = (.int32, .int64)
        case (.int64, .integer(_, false)?): k = (.uint64AsDecimal, .decimal(precision: 20, scale: 0))
        case (.int64, .time(_, .nanos)?): k = (.timeNanos64, .time)
        case (.int64, .time?): k = (.timeMicros64, .time)
        case (.int64, .timestamp(let utc, let unit)?):
            let kind: Kind = unit == .millis ? .timestampMillis : unit == .micros ? .timestampMicros : .timestampNanos
            k = (kind, utc ? .timestamptz : .timestamp)
        case (.int64, _): k = (.int64, .int64)
        case (.int96, _): k = (.int96Timestamp, .timestamp)
        case (.float, _): k = (.float32, .float64)
        case (.double, _): k = (.double, .float64)
        case (.byteArray, .string?), (.byteArray, .enumeration?): k = (.string, .text)
        case (.byteArray, .json?): k = (.json, .json)
        case (.byteArray, _): k = (.binary, .bytes)
        case (.fixedLenByteArray, .uuid?) where fixedLength == 16: k = (.uuid, .uuid)
        case (.fixedLenByteArray, .float16?) where fixedLength == 2: k = (.float16, .float64)
        case (.fixedLenByteArray, _): k = (.binary, .bytes)
        }
        kind = k.0
        type = k.1
    }
}
