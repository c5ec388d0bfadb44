public import SluiceCore

/// Reads a Parquet file into batches of a target schema, one row group at a time and only
/// the columns the schema names. Each column's source field is a top-level field or a
/// dotted path through structs; nested fields arrive as JSON. A row's line is its ordinal.
public final class ParquetBatchReader: TypedFileReader {
    let file: ParquetFile
    let spec: ReadSpec
    /// Distinct source nodes read (target columns and the op field share them).
    let sources: [ParquetSchema.Node]
    let columnSource: [Int?]
    let opSource: Int?
    var converter: TypedBatchConverter
    public let sourceFields: [String]
    public let unusedFields: [String]
    public private(set) var bytesConsumed: Int64 = 0

    var group = -1
    var rowsLeft: Int64 = 0
    var nextLine: Int64 = 1
    /// Per source, this row group's column readers keyed by leaf.
    var readers: [[Int: ParquetColumnReader]] = []
    var scratch: [UInt8] = []
    /// Spark wrote the dates (or its INT96 timestamps) in its hybrid Julian/Gregorian calendar
    /// (``LegacyCalendar``).
    let legacyDates: Bool
    let legacyInt96: Bool

    public init(file: ParquetFile, spec: ReadSpec) throws(SluiceError) {
        self.file = file
        self.spec = spec
        legacyDates = LegacyCalendar.applies(file.metadata.keyValues)
        legacyInt96 = LegacyCalendar.applies(file.metadata.keyValues, int96: true)
        var sources: [ParquetSchema.Node] = []
        func bind(_ field: String) -> Int? {
            guard let node = file.schema.node(named: field) else { return nil }
            if let i = sources.firstIndex(where: { $0 === node }) { return i }
            sources.append(node)
            return sources.count - 1
        }
        columnSource = spec.schema.columns.map { bind($0.sourceField) }
        opSource = spec.opField.flatMap { bind($0) }
        self.sources = sources
        converter = TypedBatchConverter(schema: spec.schema, capacity: spec.limits.batchRows)
        sourceFields = file.schema.root.children.map(\.name)
        let usedRoots = Set(sources.compactMap(\.path.first))
        unusedFields = sourceFields.filter { !usedRoots.contains($0) }
        for node in sources where !node.isNested && node.maxRep > 0 {
            throw SluiceError(.unsupported, "field '\(node.path.joined(separator: "."))' is inside a repeated group", at: SourceLocation(file: spec.fileName))
        }
    }

    /// Opens the next row group with rows, creating the readers of the needed leaves.
    func nextGroup() throws(SluiceError) -> Bool {
        while rowsLeft == 0 {
            group += 1
            guard group < file.rowGroupCount else { return false }
            rowsLeft = file.metadata.rowGroups[group].numRows
            readers = []
            if rowsLeft == 0 { continue }  // writers leave empty groups with placeholder offsets
            var chunks: [Int: (bytes: [UInt8], meta: Parquet.ColumnMetaData)] = [:]
            for node in sources {
                var set: [Int: ParquetColumnReader] = [:]
                for leaf in ParquetSchema.leafIndices(node) {
                    if chunks[leaf] == nil {
                        let chunk = try file.columnChunk(rowGroup: group, leaf: leaf)
                        bytesConsumed += Int64(chunk.bytes.count)
                        chunks[leaf] = chunk
                    }
                    let chunk = chunks[leaf]!
                    set[leaf] = ParquetColumnReader(bytes: chunk.bytes, meta: chunk.meta, leaf: file.schema.leaves[leaf], fileName: spec.fileName)
                }
                readers.append(set)
            }
        }
        return true
    }

    func nextBatch() throws(SluiceError) -> DecodedBatch? {
        guard try nextGroup() else { return nil }
        let n = Int(min(Int64(spec.limits.batchRows), rowsLeft))
        var natural: [Column] = []
        var trusted: [Bool] = []
        for (s, node) in sources.enumerated() {
            if let leaf = node.leafIndex, node.maxRep == 0 {
                var col = Column(type: file.schema.leaves[leaf].mapping.type, capacity: n)
                try readers[s][leaf]!.readFlat(n, into: &col)
                if legacyDates || legacyInt96 {
                    LegacyCalendar.rebase(&col, kind: file.schema.leaves[leaf].mapping.kind, dates: legacyDates, int96: legacyInt96)
                }
                natural.append(col)
                trusted.append(false)
            } else {
                natural.append(try assemble(node, readers[s], rows: n))
                trusted.append(true)
            }
        }
        rowsLeft -= Int64(n)
        let first = nextLine
        nextLine += Int64(n)
        let ops = opSource.map { Self.text(natural[$0]) }
        return converter.convert(columnSource.map { $0.map { natural[$0] } }, trusted: columnSource.map { $0.map { trusted[$0] } ?? false },
                                 ops: ops, count: n, firstLine: first, opField: spec.opField)
    }

    /// `n` rows of a nested field as JSON; a NULL top-level field is NULL, not `null`.
    func assemble(_ node: ParquetSchema.Node, _ readers: [Int: ParquetColumnReader], rows n: Int) throws(SluiceError) -> Column {
        var col = Column(type: .json, capacity: n)
        var assembler = ParquetNestedAssembler(readers: readers, fileName: spec.fileName)
        for _ in 0..<n {
            if node.repetition == .optional, try assembler.peek(node).def < Int32(node.maxDef) {
                try assembler.skip(node)
                col.appendNull()
                continue
            }
            scratch.removeAll(keepingCapacity: true)
            try assembler.writeRow(node, into: &scratch)
            col.append(bytes: scratch)
        }
        return col
    }

    /// A column as text (op values may be stored as any type).
    static func text(_ col: Column) -> Column {
        if col.type == .text { return col }
        var out = Column(type: .text, capacity: col.count)
        for i in 0..<col.count {
            if let s = ValueText.render(col, i) { out.append(bytes: Array(s.utf8)) } else { out.appendNull() }
        }
        return out
    }
}
