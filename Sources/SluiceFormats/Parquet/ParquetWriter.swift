public import SluiceCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options for writing Parquet. Defaults follow pyarrow's: snappy, dictionary encoding
/// with a fall back to plain past 1 MiB of dictionary, 1 MiB pages, 1,048,576-row groups.
public struct ParquetWriteOptions: Sendable {
    public var compression: Parquet.Codec = .snappy
    public var rowGroupRows = 1 << 20
    public var pageBytes = 1 << 20
    /// Dictionary-encode text, json and bytes columns.
    public var dictionary = true
    public var dictionaryLimitBytes = 1 << 20
    /// Which logical types the file uses; the default is what every common reader opens.
    public var compat = ParquetCompat.wide
    public init() {}
}

/// The logical types a Parquet file is written with.
public enum ParquetCompat: String, Sendable, CaseIterable {
    /// What pyarrow, DuckDB, polars, pandas and Spark all open: `uuid` as its text, `time` as
    /// microseconds since midnight (INT64): Spark refuses the UUID and TIME logical types.
    case wide
    /// Every logical type as Sluice knows it (UUID, TIME(MICROS)): for readers that take them.
    case exact

    /// A setting's name: `wide` (also `spark`) or `exact`.
    public init?(setting: String) {
        switch setting.lowercased() {
        case "wide", "spark": self = .wide
        case "exact": self = .exact
        default: return nil
        }
    }

    /// The columns as written: under `wide`, uuid becomes text and time int64.
    public func written(_ schema: TableSchema) -> TableSchema {
        guard self == .wide else { return schema }
        var s = schema
        for i in s.columns.indices {
            if s.columns[i].type == .uuid { s.columns[i].type = .text }
            if s.columns[i].type == .time { s.columns[i].type = .int64 }
        }
        return s
    }

    /// `column` as its written type (`type`): a uuid's text, a time's microseconds.
    static func convert(_ column: Column, to type: ColumnType) -> Column {
        if column.type == type { return column }
        var out = Column(type: type, capacity: column.validity.count)
        switch (column.type, type) {
        case (.time, .int64):
            out.ints = column.ints
            out.validity = column.validity
        case (.uuid, .text):
            var text: [UInt8] = []
            for i in column.validity.indices {
                if column.isNull(i) { out.appendNull(); continue }
                text.removeAll(keepingCapacity: true)
                ValueText.uuid(column.bytes(at: i), into: &text)
                text.withUnsafeBytes { out.append(bytes: $0) }
            }
        default: return column
        }
        return out
    }
}

/// Writes batches as one Parquet file: a column chunk per column per row group, data pages
/// v1 (PLAIN or RLE_DICTIONARY values, RLE definition levels), chunk statistics, and a
/// footer declaring logical types. Memory holds at most one row group's encoded pages.
public final class ParquetWriter: BatchWriter {
    let sink: any ByteSink
    let schema: TableSchema
    /// The columns as written (``ParquetCompat/written(_:)``).
    let written: TableSchema
    let options: ParquetWriteOptions
    let elements: [Parquet.SchemaElement]
    var columns: [ParquetColumnWriter]
    var rowGroups: [Parquet.RowGroup] = []
    var offset: Int64 = 0
    var groupRows = 0
    public private(set) var rowsWritten: Int64 = 0
    var finished = false

    public init(sink: any ByteSink, schema: TableSchema, options: ParquetWriteOptions = ParquetWriteOptions()) throws(SluiceError) {
        guard [.uncompressed, .snappy, .gzip, .zstd].contains(options.compression) else {
            throw SluiceError(.unsupported, "Parquet output supports none, snappy, gzip and zstd compression")
        }
        guard options.rowGroupRows > 0, options.pageBytes > 0 else { throw SluiceError(.invalidArgument, "row group and page sizes must be positive") }
        self.sink = sink
        self.schema = schema
        self.options = options
        written = options.compat.written(schema)
        var root = Parquet.SchemaElement()
        root.name = "schema"
        root.numChildren = Int32(written.columns.count)
        let leaves = written.columns.map { ParquetColumnWriter.element(for: $0) }
        elements = [root] + leaves
        columns = zip(written.columns, leaves).map { ParquetColumnWriter(column: $0, element: $1, options: options) }
        try emit(Parquet.magic)
    }

    func emit(_ bytes: [UInt8]) throws(SluiceError) {
        try sink.write(bytes)
        offset += Int64(bytes.count)
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) {
        guard !finished else { throw SluiceError(.invalidArgument, "the Parquet file is already finished") }
        guard batch.columns.count == columns.count else {
            throw SluiceError(.invalidArgument, "a batch of \(batch.columns.count) columns for a \(columns.count)-column Parquet file")
        }
        for (c, col) in batch.columns.enumerated() where col.type != schema.columns[c].type {
            throw SluiceError(.invalidArgument, "column '\(schema.columns[c].name)' is \(schema.columns[c].type) but the batch holds \(col.type)")
        }
        let values = batch.columns.indices.map { ParquetCompat.convert(batch.columns[$0], to: written.columns[$0].type) }
        var start = 0
        while start < batch.count {
            let n = min(batch.count - start, options.rowGroupRows - groupRows)
            for c in columns.indices {
                try columns[c].append(values[c], start..<(start + n))
            }
            groupRows += n
            rowsWritten += Int64(n)
            start += n
            if groupRows == options.rowGroupRows { try flushGroup() }
        }
    }

    func flushGroup() throws(SluiceError) {
        guard groupRows > 0 else { return }
        var group = Parquet.RowGroup()
        group.numRows = Int64(groupRows)
        for c in columns.indices {
            let (parts, meta0) = try columns[c].finishChunk()
            var meta = meta0
            let start = offset
            if meta.dictionaryPageOffset != nil {
                meta.dictionaryPageOffset = start
                meta.dataPageOffset += start
            } else {
                meta.dataPageOffset = start
            }
            for part in parts { try emit(part) }
            var chunk = Parquet.ColumnChunk()
            chunk.fileOffset = start
            chunk.meta = meta
            group.columns.append(chunk)
            group.totalByteSize += meta.totalUncompressedSize
        }
        rowGroups.append(group)
        groupRows = 0
    }

    public func finish() throws(SluiceError) {
        guard !finished else { return }
        try flushGroup()
        finished = true
        var meta = Parquet.FileMetaData()
        meta.version = 1
        meta.schema = elements
        meta.numRows = rowsWritten
        meta.rowGroups = rowGroups
        meta.createdBy = "sluice version 0.1.0"
        meta.typeDefinedOrder = true
        var footer = Parquet.encode(meta)
        let n = UInt32(footer.count)
        footer += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        footer += Parquet.magic
        try emit(footer)
    }
}

/// Encodes one column's values into pages for the current row group, keeping its
/// dictionary and statistics.
struct ParquetColumnWriter {
    enum Physical { case boolean, int32, int64, double, byteArray, fixed(Int) }

    let column: ColumnSchema
    let element: Parquet.SchemaElement
    let physical: Physical
    let options: ParquetWriteOptions
    let decimalWide: Bool

    // The row group's finished pages (headers included), and its counters.
    var pages: [[UInt8]] = []
    var pagesBytes = 0
    /// A page's bytes before compression, reused from page to page.
    var raw: [UInt8] = []
    var uncompressedTotal = 0
    var chunkValues = 0
    var usedPlain = false
    // The page being filled.
    var defs: [Int32] = []
    var values: [UInt8] = []
    var indices: [Int32] = []
    var bitBuffer: UInt8 = 0
    var bitCount = 0
    var pageEntries = 0
    // Dictionary state: on until it grows past its limit, then plain for the rest of the chunk.
    var dictionary: ByteDictionary?
    var dictionaryOn: Bool
    // Statistics.
    var nullCount: Int64 = 0
    var minInt = Int64.max, maxInt = Int64.min
    var minDouble = Double.infinity, maxDouble = -Double.infinity, sawDouble = false
    var minWide = Int128.max, maxWide = Int128.min
    var minBytes: [UInt8]?, maxBytes: [UInt8]?

    static func element(for c: ColumnSchema) -> Parquet.SchemaElement {
        var e = Parquet.SchemaElement()
        e.name = c.name
        e.repetition = c.nullable ? .optional : .required
        switch c.type {
        case .int64: e.type = .int64
        case .float64: e.type = .double
        case .bool: e.type = .boolean
        case .decimal(_, nil):
            // A decimal whose values keep their own scale has no Parquet type; it is written as text.
            e.type = .byteArray; e.logicalType = .string; e.convertedType = .utf8
        case .decimal(let p, let s?):
            e.type = p <= 9 ? .int32 : p <= 18 ? .int64 : .fixedLenByteArray
            if p > 18 { e.typeLength = 16 }
            e.logicalType = .decimal(scale: Int32(s), precision: Int32(p))
            e.convertedType = .decimal
            e.scale = Int32(s)
            e.precision = Int32(p)
        case .text: e.type = .byteArray; e.logicalType = .string; e.convertedType = .utf8
        case .json: e.type = .byteArray; e.logicalType = .json; e.convertedType = .json
        case .bytes: e.type = .byteArray
        case .date: e.type = .int32; e.logicalType = .date; e.convertedType = .date
        case .timestamp: e.type = .int64; e.logicalType = .timestamp(utc: false, unit: .micros)
        case .timestamptz: e.type = .int64; e.logicalType = .timestamp(utc: true, unit: .micros); e.convertedType = .timestampMicros
        case .time: e.type = .int64; e.logicalType = .time(utc: false, unit: .micros)
        case .uuid: e.type = .fixedLenByteArray; e.typeLength = 16; e.logicalType = .uuid
        }
        return e
    }

    init(column: ColumnSchema, element: Parquet.SchemaElement, options: ParquetWriteOptions) {
        self.column = column
        self.element = element
        self.options = options
        switch element.type! {
        case .boolean: physical = .boolean
        case .int32: physical = .int32
        case .int64: physical = .int64
        case .double: physical = .double
        case .fixedLenByteArray: physical = .fixed(Int(element.typeLength!))
        default: physical = .byteArray
        }
        if case .decimal(let p, _) = column.type, p > 18 { decimalWide = true } else { decimalWide = false }
        dictionaryOn = options.dictionary && element.type == .byteArray
        if dictionaryOn { dictionary = ByteDictionary() }
    }

    /// Appends rows `range` of `col`, a run of up to 4,096 rows at a time, cutting a page
    /// when it reaches the page size (or the dictionary its limit).
    mutating func append(_ col: Column, _ range: Range<Int>) throws(SluiceError) {
        var i = range.lowerBound
        while i < range.upperBound {
            let end = min(range.upperBound, i + 4096)
            try appendRun(col, i..<end)
            i = end
            if values.count + indices.count * 2 >= options.pageBytes || (dictionaryFull && dictionaryOn) { try flushPage() }
        }
    }

    mutating func appendRun(_ col: Column, _ run: Range<Int>) throws(SluiceError) {
        var nulls = 0
        for k in run where !col.validity[k] { nulls += 1 }
        if nulls > 0 && !column.nullable { throw SluiceError(.invalidArgument, "NULL in NOT NULL column '\(column.name)'") }
        if column.nullable {
            defs.reserveCapacity(defs.count + run.count)
            for k in run { defs.append(col.validity[k] ? 1 : 0) }
        }
        nullCount += Int64(nulls)
        pageEntries += run.count
        let present = run.count - nulls
        switch column.type {
        case .int64, .date, .timestamp, .timestamptz, .time:
            appendInts(col, run, present, width: intWidth) { col.ints[$0] }
        case .decimal(_, _?) where !decimalWide:
            appendInts(col, run, present, width: intWidth) { Int64(truncatingIfNeeded: col.decimals[$0].significand) }
        case .bool:
            for k in run where col.validity[k] {
                let v = col.ints[k]
                if v != 0 { bitBuffer |= 1 << UInt8(bitCount) }
                bitCount += 1
                if bitCount == 8 { values.append(bitBuffer); bitBuffer = 0; bitCount = 0 }
                minInt = min(minInt, v)
                maxInt = max(maxInt, v)
            }
        case .float64:
            let base = values.count
            values.append(contentsOf: repeatElement(0, count: present * 8))
            values.withUnsafeMutableBytes { out in
                var o = base
                for k in run where col.validity[k] {
                    let v = col.doubles[k]
                    if !v.isNaN {
                        sawDouble = true
                        minDouble = min(minDouble, v)
                        maxDouble = max(maxDouble, v)
                    }
                    out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: o, as: UInt64.self)
                    o += 8
                }
            }
        case .decimal(_, nil):
            for k in run where col.validity[k] {
                let text = Array(col.decimals[k].text.utf8)
                text.withUnsafeBytes { updateByteStats($0) }
                appendLE(UInt32(text.count))
                values += text
            }
        case .decimal:
            for k in run where col.validity[k] {
                let d = col.decimals[k].significand
                minWide = min(minWide, d)
                maxWide = max(maxWide, d)
                Self.bigEndian(d, into: &values)
            }
        case .text, .json, .bytes, .uuid:
            appendBytes(col, run)
        }
    }

    var intWidth: Int { if case .int32 = physical { 4 } else { 8 } }

    /// Integer-stored values, `width` bytes each, with their min and max.
    mutating func appendInts(_ col: Column, _ run: Range<Int>, _ present: Int, width: Int, _ value: (Int) -> Int64) {
        let base = values.count
        values.append(contentsOf: repeatElement(0, count: present * width))
        var lo = minInt, hi = maxInt
        values.withUnsafeMutableBytes { out in
            var o = base
            for k in run where col.validity[k] {
                let v = value(k)
                lo = min(lo, v)
                hi = max(hi, v)
                if width == 4 {
                    out.storeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, toByteOffset: o, as: UInt32.self)
                } else {
                    out.storeBytes(of: UInt64(bitPattern: v).littleEndian, toByteOffset: o, as: UInt64.self)
                }
                o += width
            }
        }
        minInt = lo
        maxInt = hi
    }

    /// Byte-string values: dictionary indices while the dictionary is on, else PLAIN; the
    /// run's min and max are found in place and merged into the chunk's once.
    mutating func appendBytes(_ col: Column, _ run: Range<Int>) {
        var runMin: Range<Int>?, runMax: Range<Int>?
        col.data.withUnsafeBytes { d in
            func slice(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: d[r]) }
            for k in run where col.validity[k] {
                let r = col.offsets[k]..<col.offsets[k + 1]
                let v = slice(r)
                if let m = runMin { if Self.less(v, slice(m)) { runMin = r } } else { runMin = r }
                if let m = runMax { if Self.less(slice(m), v) { runMax = r } } else { runMax = r }
                if dictionaryOn, dictionary != nil {
                    indices.append(dictionary!.index(of: v))
                    if dictionary!.byteSize > options.dictionaryLimitBytes { dictionaryFull = true }
                    continue
                }
                if case .byteArray = physical { appendLE(UInt32(v.count)) }
                values.append(contentsOf: v)
            }
            if let m = runMin { updateByteStats(slice(m)) }
            if let m = runMax { updateByteStats(slice(m)) }
        }
    }

    var dictionaryFull = false

    mutating func updateByteStats(_ v: UnsafeRawBufferPointer) {
        if let m = minBytes {
            if Self.less(v, m) { minBytes = Array(v) }
        } else {
            minBytes = Array(v)
        }
        if let m = maxBytes {
            if Self.less(m, v) { maxBytes = Array(v) }
        } else {
            maxBytes = Array(v)
        }
    }

    static func less(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Bool {
        b.withUnsafeBytes { b in less(a, b) }
    }

    static func less(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.withUnsafeBytes { a in less(a, b) }
    }

    /// Unsigned lexicographic order, as Parquet orders byte arrays.
    static func less(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = min(a.count, b.count)
        if n > 0 {
            let c = memcmp(a.baseAddress!, b.baseAddress!, n)
            if c != 0 { return c < 0 }
        }
        return a.count < b.count
    }

    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { values.append(contentsOf: $0) }
    }

    static func bigEndian(_ v: Int128, into out: inout [UInt8]) {
        let u = UInt128(bitPattern: v)
        for k in stride(from: 15, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: u >> (UInt128(k) * 8))) }
    }

    /// Compresses `raw` with the chunk's codec.
    func compress(_ raw: [UInt8]) throws(SluiceError) -> [UInt8] {
        var out: [UInt8] = []
        try raw.withBytes { (b) throws(SluiceError) in
            switch options.compression {
            case .snappy: Snappy.compress(b, into: &out)
            case .gzip: try Zlib.deflate(b, framing: .gzipOrZlib, into: &out)
            case .zstd: try Zstd.compress(b, into: &out)
            default: out = raw
            }
        }
        return out
    }

    /// The page (header and compressed body) for `raw`.
    mutating func encodePage(_ header: Parquet.PageHeader, _ raw: [UInt8]) throws(SluiceError) -> [UInt8] {
        guard raw.count <= Int(Int32.max) else { throw SluiceError(.invalidArgument, "a Parquet page over 2 GiB") }
        let body = try compress(raw)
        var h = header
        h.uncompressedSize = Int32(raw.count)
        h.compressedSize = Int32(body.count)
        var out = Parquet.encode(h)
        uncompressedTotal += out.count + raw.count
        out += body
        return out
    }

    mutating func flushPage() throws(SluiceError) {
        guard pageEntries > 0 else { return }
        raw.removeAll(keepingCapacity: true)
        if column.nullable {
            var levels: [UInt8] = []
            defs.withUnsafeBufferPointer { ParquetEncoding.encodeHybrid($0, bitWidth: 1, into: &levels) }
            let n = UInt32(levels.count)
            raw += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
            raw += levels
        }
        let encoding: Parquet.Encoding
        if !indices.isEmpty {
            let width = max(1, ParquetEncoding.bitWidth(max(0, dictionary!.count - 1)))
            raw.append(UInt8(width))
            indices.withUnsafeBufferPointer { ParquetEncoding.encodeHybrid($0, bitWidth: width, into: &raw) }
            encoding = .rleDictionary
        } else {
            if bitCount > 0 { values.append(bitBuffer); bitBuffer = 0; bitCount = 0 }
            raw += values
            encoding = .plain
            usedPlain = true
        }
        var h = Parquet.PageHeader()
        h.type = Parquet.PageType.dataPage.rawValue
        var d = Parquet.DataPageHeader()
        d.numValues = Int32(pageEntries)
        d.encoding = encoding.rawValue
        d.definitionLevelEncoding = Parquet.Encoding.rle.rawValue
        d.repetitionLevelEncoding = Parquet.Encoding.rle.rawValue
        h.dataPage = d
        let page = try encodePage(h, raw)
        pages.append(page)
        pagesBytes += page.count
        chunkValues += pageEntries
        pageEntries = 0
        defs.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        indices.removeAll(keepingCapacity: true)
        if dictionaryFull { dictionaryOn = false }
    }

    /// The row group's column chunk in parts (dictionary page, data pages) and its metadata, with offsets
    /// relative to the chunk's start; resets for the next row group.
    mutating func finishChunk() throws(SluiceError) -> ([[UInt8]], Parquet.ColumnMetaData) {
        try flushPage()
        var meta = Parquet.ColumnMetaData()
        meta.type = element.type!
        meta.path = [column.name]
        meta.codec = options.compression
        meta.numValues = Int64(chunkValues)
        var out: [UInt8] = []
        var encodings: [Int32] = [Parquet.Encoding.rle.rawValue]
        if let dict = dictionary, dict.count > 0, chunkUsedDictionary {
            var raw: [UInt8] = []
            raw.reserveCapacity(dict.byteSize + dict.count * 4)
            for k in 0..<dict.count {
                let (s, e) = (dict.offsets[k], dict.offsets[k + 1])
                let n = UInt32(e - s)
                raw += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
                raw += dict.data[s..<e]
            }
            var h = Parquet.PageHeader()
            h.type = Parquet.PageType.dictionaryPage.rawValue
            h.dictionaryPage = Parquet.DictionaryPageHeader(numValues: Int32(dict.count), encoding: Parquet.Encoding.plain.rawValue)
            out = try encodePage(h, raw)
            meta.dictionaryPageOffset = 0
            meta.dataPageOffset = Int64(out.count)
            encodings.append(Parquet.Encoding.rleDictionary.rawValue)
        }
        if usedPlain || !chunkUsedDictionary { encodings.append(Parquet.Encoding.plain.rawValue) }
        meta.encodings = encodings
        meta.totalCompressedSize = Int64(out.count + pagesBytes)
        meta.totalUncompressedSize = Int64(uncompressedTotal)
        meta.statistics = statistics()
        let parts = [out] + pages
        reset()
        return (parts, meta)
    }

    var chunkUsedDictionary: Bool { (dictionary?.count ?? 0) > 0 }

    func statistics() -> Parquet.Statistics {
        var s = Parquet.Statistics()
        s.nullCount = nullCount
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        switch column.type {
        case .int64, .date, .timestamp, .timestamptz, .time, .bool:
            guard minInt <= maxInt else { break }
            if column.type == .bool {
                s.minValue = [UInt8(minInt)]
                s.maxValue = [UInt8(maxInt)]
            } else if case .int32 = physical {
                s.minValue = le(Int32(truncatingIfNeeded: minInt))
                s.maxValue = le(Int32(truncatingIfNeeded: maxInt))
            } else {
                s.minValue = le(minInt)
                s.maxValue = le(maxInt)
            }
        case .decimal(_, nil):
            s.minValue = minBytes
            s.maxValue = maxBytes
        case .decimal:
            if decimalWide {
                guard minWide <= maxWide else { break }
                var a: [UInt8] = [], b: [UInt8] = []
                Self.bigEndian(minWide, into: &a)
                Self.bigEndian(maxWide, into: &b)
                s.minValue = a
                s.maxValue = b
            } else {
                guard minInt <= maxInt else { break }
                if case .int32 = physical {
                    s.minValue = le(Int32(truncatingIfNeeded: minInt))
                    s.maxValue = le(Int32(truncatingIfNeeded: maxInt))
                } else {
                    s.minValue = le(minInt)
                    s.maxValue = le(maxInt)
                }
            }
        case .float64:
            guard sawDouble else { break }
            // The spec asks for -0 as a minimum and +0 as a maximum when zero is the bound.
            let lo = minDouble == 0 ? -0.0 : minDouble
            let hi = maxDouble == 0 ? 0.0 : maxDouble
            s.minValue = le(lo.bitPattern)
            s.maxValue = le(hi.bitPattern)
        case .text, .json, .bytes, .uuid:
            s.minValue = minBytes
            s.maxValue = maxBytes
        }
        return s
    }

    mutating func reset() {
        pages = []
        pagesBytes = 0
        uncompressedTotal = 0
        chunkValues = 0
        usedPlain = false
        nullCount = 0
        minInt = .max; maxInt = .min
        minDouble = .infinity; maxDouble = -.infinity; sawDouble = false
        minWide = .max; maxWide = .min
        minBytes = nil; maxBytes = nil
        dictionaryOn = options.dictionary && element.type == .byteArray
        dictionaryFull = false
        dictionary = dictionaryOn ? ByteDictionary() : nil
    }
}

/// Distinct byte strings in first-seen order with an open-addressing hash index, for
/// dictionary encoding without a heap allocation per value.
struct ByteDictionary {
    var data: [UInt8] = []
    var offsets: [Int] = [0]
    var table = [Int32](repeating: -1, count: 1024)
    var count: Int { offsets.count - 1 }
    var byteSize: Int { data.count + count * 4 }

    /// The index of `v`, added if new.
    mutating func index(of v: UnsafeRawBufferPointer) -> Int32 {
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: ByteHash.hash(v)) & mask
        while true {
            let k = table[slot]
            if k < 0 { break }
            let (s, e) = (offsets[Int(k)], offsets[Int(k) + 1])
            if e - s == v.count {
                let same = v.count == 0 || data.withUnsafeBytes { memcmp($0.baseAddress! + s, v.baseAddress!, v.count) == 0 }
                if same { return k }
            }
            slot = (slot + 1) & mask
        }
        let k = Int32(count)
        data.append(contentsOf: v)
        offsets.append(data.count)
        table[slot] = k
        if count * 2 > table.count { grow() }
        return k
    }

    mutating func grow() {
        var t = [Int32](repeating: -1, count: table.count * 2)
        let mask = t.count - 1
        data.withUnsafeBytes { d in
            for k in 0..<count {
                let v = UnsafeRawBufferPointer(rebasing: d[offsets[k]..<offsets[k + 1]])
                var slot = Int(truncatingIfNeeded: ByteHash.hash(v)) & mask
                while t[slot] >= 0 { slot = (slot + 1) & mask }
                t[slot] = Int32(k)
            }
        }
        table = t
    }
}
