public import SluiceCore

/// Parquet's footer and page headers: the fields Sluice reads and writes, with the Thrift
/// field ids of `parquet.thrift`. Unknown fields are skipped, so newer files still read.
public enum Parquet {
    public static let magic: [UInt8] = Array("PAR1".utf8)

    public enum PhysicalType: Int32, Sendable {
        case boolean = 0, int32 = 1, int64 = 2, int96 = 3, float = 4, double = 5, byteArray = 6, fixedLenByteArray = 7
    }

    public enum Repetition: Int32, Sendable { case required = 0, optional = 1, repeated = 2 }

    public enum ConvertedType: Int32, Sendable {
        case utf8 = 0, map = 1, mapKeyValue = 2, list = 3, enumeration = 4, decimal = 5, date = 6, timeMillis = 7, timeMicros = 8
        case timestampMillis = 9, timestampMicros = 10, uint8 = 11, uint16 = 12, uint32 = 13, uint64 = 14
        case int8 = 15, int16 = 16, int32 = 17, int64 = 18, json = 19, bson = 20, interval = 21
    }

    public enum TimeUnit: Sendable, Hashable { case millis, micros, nanos }

    public enum LogicalType: Sendable, Hashable {
        case string, map, list, enumeration, date, json, bson, uuid, float16, unknown
        case decimal(scale: Int32, precision: Int32)
        case time(utc: Bool, unit: TimeUnit)
        case timestamp(utc: Bool, unit: TimeUnit)
        case integer(bitWidth: Int8, signed: Bool)
        case other(Int16)
    }

    public enum Encoding: Int32, Sendable {
        case plain = 0, plainDictionary = 2, rle = 3, bitPacked = 4, deltaBinaryPacked = 5, deltaLengthByteArray = 6
        case deltaByteArray = 7, rleDictionary = 8, byteStreamSplit = 9
    }

    public enum Codec: Int32, Sendable {
        case uncompressed = 0, snappy = 1, gzip = 2, lzo = 3, brotli = 4, lz4 = 5, zstd = 6, lz4Raw = 7

        /// A codec Sluice writes, by its setting name: none (uncompressed), snappy, gzip or zstd.
        public init?(setting: String) {
            switch setting.lowercased() {
            case "none", "uncompressed": self = .uncompressed
            case "snappy": self = .snappy
            case "gzip": self = .gzip
            case "zstd": self = .zstd
            default: return nil
            }
        }
    }

    public enum PageType: Int32, Sendable { case dataPage = 0, indexPage = 1, dictionaryPage = 2, dataPageV2 = 3 }

    public struct SchemaElement: Sendable {
        public var type: PhysicalType?
        public var typeLength: Int32?
        public var repetition: Repetition?
        public var name: String = ""
        public var numChildren: Int32?
        public var convertedType: ConvertedType?
        public var scale: Int32?
        public var precision: Int32?
        public var logicalType: LogicalType?
        /// The writer's id for the field (Iceberg, Delta's column mapping by id).
        public var fieldId: Int32?
        public init() {}
    }

    public struct Statistics: Sendable {
        public var nullCount: Int64?
        public var minValue: [UInt8]?
        public var maxValue: [UInt8]?
        public init() {}
    }

    public struct ColumnMetaData: Sendable {
        public var type: PhysicalType = .int32
        public var encodings: [Int32] = []
        public var path: [String] = []
        public var codec: Codec = .uncompressed
        public var numValues: Int64 = 0
        public var totalUncompressedSize: Int64 = 0
        public var totalCompressedSize: Int64 = 0
        public var dataPageOffset: Int64 = 0
        public var dictionaryPageOffset: Int64?
        public var statistics: Statistics?
        public init() {}
    }

    public struct ColumnChunk: Sendable {
        public var filePath: String?
        public var fileOffset: Int64 = 0
        public var meta: ColumnMetaData?
        public init() {}
    }

    public struct RowGroup: Sendable {
        public var columns: [ColumnChunk] = []
        public var totalByteSize: Int64 = 0
        public var numRows: Int64 = 0
        public init() {}
    }

    public struct KeyValue: Sendable {
        public var key: String
        public var value: String?
    }

    public struct FileMetaData: Sendable {
        public var version: Int32 = 1
        public var schema: [SchemaElement] = []
        public var numRows: Int64 = 0
        public var rowGroups: [RowGroup] = []
        public var keyValues: [KeyValue] = []
        public var createdBy: String?
        /// Whether to declare every column's statistics in its type's defined order (the
        /// footer's `column_orders`), so readers trust min and max.
        public var typeDefinedOrder = false
        public init() {}
    }

    public struct DataPageHeader: Sendable {
        public var numValues: Int32 = 0
        public var encoding: Int32 = 0
        public var definitionLevelEncoding: Int32 = 3
        public var repetitionLevelEncoding: Int32 = 3
    }

    public struct DataPageHeaderV2: Sendable {
        public var numValues: Int32 = 0
        public var numNulls: Int32 = 0
        public var numRows: Int32 = 0
        public var encoding: Int32 = 0
        public var definitionLevelsByteLength: Int32 = 0
        public var repetitionLevelsByteLength: Int32 = 0
        public var isCompressed = true
    }

    public struct DictionaryPageHeader: Sendable {
        public var numValues: Int32 = 0
        public var encoding: Int32 = 0
    }

    public struct PageHeader: Sendable {
        public var type: Int32 = 0
        public var uncompressedSize: Int32 = 0
        public var compressedSize: Int32 = 0
        public var dataPage: DataPageHeader?
        public var dataPageV2: DataPageHeaderV2?
        public var dictionaryPage: DictionaryPageHeader?
        public var statistics: Statistics?
        public init() {}
    }
}

// MARK: Decoding

extension Parquet {
    static func enumValue<E: RawRepresentable>(_ r: inout ThriftReader, _ t: ThriftReader.FieldType, _ name: String) throws(SluiceError) -> E? where E.RawValue == Int32 {
        try r.expect(t, .i32, name)
        return E(rawValue: try r.i32())
    }

    static func timeUnit(_ r: inout ThriftReader) throws(SluiceError) -> TimeUnit {
        var unit = TimeUnit.micros
        try r.structure { r, id, t throws(SluiceError) in
            guard t == .structure else { return false }
            switch id {
            case 1: unit = .millis
            case 2: unit = .micros
            case 3: unit = .nanos
            default: return false
            }
            try r.skip(t)
            return true
        }
        return unit
    }

    static func logicalType(_ r: inout ThriftReader) throws(SluiceError) -> LogicalType? {
        var result: LogicalType?
        try r.structure { r, id, t throws(SluiceError) in
            guard t == .structure else { return false }
            switch id {
            case 1: result = .string
            case 2: result = .map
            case 3: result = .list
            case 4: result = .enumeration
            case 5:
                var scale: Int32 = 0, precision: Int32 = 0
                try r.structure { r, id, t throws(SluiceError) in
                    switch id {
                    case 1: try r.expect(t, .i32, "DecimalType.scale"); scale = try r.i32()
                    case 2: try r.expect(t, .i32, "DecimalType.precision"); precision = try r.i32()
                    default: return false
                    }
                    return true
                }
                result = .decimal(scale: scale, precision: precision)
                return true
            case 6: result = .date
            case 7, 8:
                var utc = false, unit = TimeUnit.micros
                try r.structure { r, fid, ft throws(SluiceError) in
                    switch fid {
                    case 1: try r.expect(ft, .boolTrue, "isAdjustedToUTC"); utc = r.bool(ft)
                    case 2: try r.expect(ft, .structure, "unit"); unit = try timeUnit(&r)
                    default: return false
                    }
                    return true
                }
                result = id == 7 ? .time(utc: utc, unit: unit) : .timestamp(utc: utc, unit: unit)
                return true
            case 10:
                var width: Int8 = 64, signed = true
                try r.structure { r, fid, ft throws(SluiceError) in
                    switch fid {
                    case 1: try r.expect(ft, .byte, "bitWidth"); width = Int8(bitPattern: try r.byte())
                    case 2: try r.expect(ft, .boolTrue, "isSigned"); signed = r.bool(ft)
                    default: return false
                    }
                    return true
                }
                result = .integer(bitWidth: width, signed: signed)
                return true
            case 11: result = .unknown
            case 12: result = .json
            case 13: result = .bson
            case 14: result = .uuid
            case 15: result = .float16
            default: result = .other(id)
            }
            try r.skip(t)
            return true
        }
        return result
    }

    static func schemaElement(_ r: inout ThriftReader) throws(SluiceError) -> SchemaElement {
        var e = SchemaElement()
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1:
                guard let v: PhysicalType = try enumValue(&r, t, "type") else { throw r.fail("unknown physical type") }
                e.type = v
            case 2: try r.expect(t, .i32, "type_length"); e.typeLength = try r.i32()
            case 3: e.repetition = try enumValue(&r, t, "repetition_type")
            case 4: try r.expect(t, .binary, "name"); e.name = try r.string()
            case 5: try r.expect(t, .i32, "num_children"); e.numChildren = try r.i32()
            case 6: e.convertedType = try enumValue(&r, t, "converted_type")
            case 7: try r.expect(t, .i32, "scale"); e.scale = try r.i32()
            case 8: try r.expect(t, .i32, "precision"); e.precision = try r.i32()
            case 9: try r.expect(t, .i32, "field_id"); e.fieldId = try r.i32()
            case 10: try r.expect(t, .structure, "logicalType"); e.logicalType = try logicalType(&r)
            default: return false
            }
            return true
        }
        return e
    }

    static func statistics(_ r: inout ThriftReader) throws(SluiceError) -> Statistics {
        var s = Statistics()
        var legacyMin: [UInt8]?, legacyMax: [UInt8]?
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1: try r.expect(t, .binary, "max"); legacyMax = try r.binary()
            case 2: try r.expect(t, .binary, "min"); legacyMin = try r.binary()
            case 3: try r.expect(t, .i64, "null_count"); s.nullCount = try r.i64()
            case 5: try r.expect(t, .binary, "max_value"); s.maxValue = try r.binary()
            case 6: try r.expect(t, .binary, "min_value"); s.minValue = try r.binary()
            default: return false
            }
            return true
        }
        if s.minValue == nil { s.minValue = legacyMin }
        if s.maxValue == nil { s.maxValue = legacyMax }
        return s
    }

    static func columnMetaData(_ r: inout ThriftReader) throws(SluiceError) -> ColumnMetaData {
        var m = ColumnMetaData()
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1:
                guard let v: PhysicalType = try enumValue(&r, t, "type") else { throw r.fail("unknown physical type") }
                m.type = v
            case 2:
                try r.expect(t, .list, "encodings")
                try r.list { r, et throws(SluiceError) in try r.expect(et, .i32, "encoding"); m.encodings.append(try r.i32()) }
            case 3:
                try r.expect(t, .list, "path_in_schema")
                try r.list { r, et throws(SluiceError) in try r.expect(et, .binary, "path"); m.path.append(try r.string()) }
            case 4:
                try r.expect(t, .i32, "codec")
                let v = try r.i32()
                guard let c = Codec(rawValue: v) else { throw r.fail("unknown compression codec \(v)") }
                m.codec = c
            case 5: try r.expect(t, .i64, "num_values"); m.numValues = try r.i64()
            case 6: try r.expect(t, .i64, "total_uncompressed_size"); m.totalUncompressedSize = try r.i64()
            case 7: try r.expect(t, .i64, "total_compressed_size"); m.totalCompressedSize = try r.i64()
            case 9: try r.expect(t, .i64, "data_page_offset"); m.dataPageOffset = try r.i64()
            case 11: try r.expect(t, .i64, "dictionary_page_offset"); m.dictionaryPageOffset = try r.i64()
            case 12: try r.expect(t, .structure, "statistics"); m.statistics = try statistics(&r)
            default: return false
            }
            return true
        }
        return m
    }

    static func rowGroup(_ r: inout ThriftReader) throws(SluiceError) -> RowGroup {
        var g = RowGroup()
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1:
                try r.expect(t, .list, "columns")
                try r.list { r, et throws(SluiceError) in
                    try r.expect(et, .structure, "ColumnChunk")
                    var c = ColumnChunk()
                    try r.structure { r, id, t throws(SluiceError) in
                        switch id {
                        case 1: try r.expect(t, .binary, "file_path"); c.filePath = try r.string()
                        case 2: try r.expect(t, .i64, "file_offset"); c.fileOffset = try r.i64()
                        case 3: try r.expect(t, .structure, "meta_data"); c.meta = try columnMetaData(&r)
                        default: return false
                        }
                        return true
                    }
                    g.columns.append(c)
                }
            case 2: try r.expect(t, .i64, "total_byte_size"); g.totalByteSize = try r.i64()
            case 3: try r.expect(t, .i64, "num_rows"); g.numRows = try r.i64()
            default: return false
            }
            return true
        }
        return g
    }

    /// Decodes the footer's FileMetaData.
    public static func fileMetaData(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> FileMetaData {
        var r = ThriftReader(bytes, what: "Parquet footer")
        var m = FileMetaData()
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1: try r.expect(t, .i32, "version"); m.version = try r.i32()
            case 2:
                try r.expect(t, .list, "schema")
                try r.list { r, et throws(SluiceError) in try r.expect(et, .structure, "SchemaElement"); m.schema.append(try schemaElement(&r)) }
            case 3: try r.expect(t, .i64, "num_rows"); m.numRows = try r.i64()
            case 4:
                try r.expect(t, .list, "row_groups")
                try r.list { r, et throws(SluiceError) in try r.expect(et, .structure, "RowGroup"); m.rowGroups.append(try rowGroup(&r)) }
            case 5:
                try r.expect(t, .list, "key_value_metadata")
                try r.list { r, et throws(SluiceError) in
                    try r.expect(et, .structure, "KeyValue")
                    var k = "", v: String?
                    try r.structure { r, id, t throws(SluiceError) in
                        switch id {
                        case 1: try r.expect(t, .binary, "key"); k = try r.string()
                        case 2: try r.expect(t, .binary, "value"); v = try r.string()
                        default: return false
                        }
                        return true
                    }
                    m.keyValues.append(KeyValue(key: k, value: v))
                }
            case 6: try r.expect(t, .binary, "created_by"); m.createdBy = try r.string()
            case 8, 9: throw r.fail("the file is encrypted, which Sluice does not read")
            default: return false
            }
            return true
        }
        return m
    }

    /// Decodes one page header at the start of `bytes`; returns it and its encoded length.
    public static func pageHeader(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> (PageHeader, Int) {
        var r = ThriftReader(bytes, what: "Parquet page header")
        var h = PageHeader()
        try r.structure { r, id, t throws(SluiceError) in
            switch id {
            case 1: try r.expect(t, .i32, "type"); h.type = try r.i32()
            case 2: try r.expect(t, .i32, "uncompressed_page_size"); h.uncompressedSize = try r.i32()
            case 3: try r.expect(t, .i32, "compressed_page_size"); h.compressedSize = try r.i32()
            case 5:
                try r.expect(t, .structure, "data_page_header")
                var d = DataPageHeader()
                try r.structure { r, id, t throws(SluiceError) in
                    switch id {
                    case 1: try r.expect(t, .i32, "num_values"); d.numValues = try r.i32()
                    case 2: try r.expect(t, .i32, "encoding"); d.encoding = try r.i32()
                    case 3: try r.expect(t, .i32, "definition_level_encoding"); d.definitionLevelEncoding = try r.i32()
                    case 4: try r.expect(t, .i32, "repetition_level_encoding"); d.repetitionLevelEncoding = try r.i32()
                    default: return false
                    }
                    return true
                }
                h.dataPage = d
            case 7:
                try r.expect(t, .structure, "dictionary_page_header")
                var d = DictionaryPageHeader()
                try r.structure { r, id, t throws(SluiceError) in
                    switch id {
                    case 1: try r.expect(t, .i32, "num_values"); d.numValues = try r.i32()
                    case 2: try r.expect(t, .i32, "encoding"); d.encoding = try r.i32()
                    default: return false
                    }
                    return true
                }
                h.dictionaryPage = d
            case 8:
                try r.expect(t, .structure, "data_page_header_v2")
                var d = DataPageHeaderV2()
                try r.structure { r, id, t throws(SluiceError) in
                    switch id {
                    case 1: try r.expect(t, .i32, "num_values"); d.numValues = try r.i32()
                    case 2: try r.expect(t, .i32, "num_nulls"); d.numNulls = try r.i32()
                    case 3: try r.expect(t, .i32, "num_rows"); d.numRows = try r.i32()
                    case 4: try r.expect(t, .i32, "encoding"); d.encoding = try r.i32()
                    case 5: try r.expect(t, .i32, "definition_levels_byte_length"); d.definitionLevelsByteLength = try r.i32()
                    case 6: try r.expect(t, .i32, "repetition_levels_byte_length"); d.repetitionLevelsByteLength = try r.i32()
                    case 7: try r.expect(t, .boolTrue, "is_compressed"); d.isCompressed = r.bool(t)
                    default: return false
                    }
                    return true
                }
                h.dataPageV2 = d
            default: return false
            }
            return true
        }
        return (h, r.position)
    }
}

// MARK: Encoding

extension Parquet {
    static func write(_ w: inout ThriftWriter, statistics s: Statistics) {
        if let n = s.nullCount { w.field(3, i64: n) }
        if let v = s.maxValue { w.field(5, binary: v) }
        if let v = s.minValue { w.field(6, binary: v) }
    }

    static func write(_ w: inout ThriftWriter, logicalType l: LogicalType) {
        func empty(_ id: Int16) { w.field(id, struct: { _ in }) }
        func unit(_ w: inout ThriftWriter, _ u: TimeUnit) {
            w.field(2, struct: { w in w.field(u == .millis ? 1 : u == .micros ? 2 : 3, struct: { _ in }) })
        }
        switch l {
        case .string: empty(1)
        case .map: empty(2)
        case .list: empty(3)
        case .enumeration: empty(4)
        case .decimal(let s, let p): w.field(5, struct: { w in w.field(1, i32: s); w.field(2, i32: p) })
        case .date: empty(6)
        case .time(let utc, let u): w.field(7, struct: { w in w.field(1, bool: utc); unit(&w, u) })
        case .timestamp(let utc, let u): w.field(8, struct: { w in w.field(1, bool: utc); unit(&w, u) })
        case .integer(let b, let s): w.field(10, struct: { w in w.field(1, byte: b); w.field(2, bool: s) })
        case .unknown: empty(11)
        case .json: empty(12)
        case .bson: empty(13)
        case .uuid: empty(14)
        case .float16: empty(15)
        case .other: break
        }
    }

    /// Encodes the footer's FileMetaData.
    public static func encode(_ m: FileMetaData) -> [UInt8] {
        var w = ThriftWriter()
        w.structBody { w in
            w.field(1, i32: m.version)
            w.field(2, structList: m.schema) { w, e in
                if let t = e.type { w.field(1, i32: t.rawValue) }
                if let l = e.typeLength { w.field(2, i32: l) }
                if let r = e.repetition { w.field(3, i32: r.rawValue) }
                w.field(4, string: e.name)
                if let n = e.numChildren { w.field(5, i32: n) }
                if let c = e.convertedType { w.field(6, i32: c.rawValue) }
                if let s = e.scale { w.field(7, i32: s) }
                if let p = e.precision { w.field(8, i32: p) }
                if let l = e.logicalType { w.field(10, struct: { write(&$0, logicalType: l) }) }
            }
            w.field(3, i64: m.numRows)
            w.field(4, structList: m.rowGroups) { w, g in
                w.field(1, structList: g.columns) { w, c in
                    if let p = c.filePath { w.field(1, string: p) }
                    w.field(2, i64: c.fileOffset)
                    if let cm = c.meta {
                        w.field(3, struct: { w in
                            w.field(1, i32: cm.type.rawValue)
                            w.field(2, i32List: cm.encodings)
                            w.field(3, stringList: cm.path)
                            w.field(4, i32: cm.codec.rawValue)
                            w.field(5, i64: cm.numValues)
                            w.field(6, i64: cm.totalUncompressedSize)
                            w.field(7, i64: cm.totalCompressedSize)
                            w.field(9, i64: cm.dataPageOffset)
                            if let d = cm.dictionaryPageOffset { w.field(11, i64: d) }
                            if let s = cm.statistics { w.field(12, struct: { write(&$0, statistics: s) }) }
                        })
                    }
                }
                w.field(2, i64: g.totalByteSize)
                w.field(3, i64: g.numRows)
            }
            if !m.keyValues.isEmpty {
                w.field(5, structList: m.keyValues) { w, kv in
                    w.field(1, string: kv.key)
                    if let v = kv.value { w.field(2, string: v) }
                }
            }
            if let c = m.createdBy { w.field(6, string: c) }
            if m.typeDefinedOrder {
                let leaves = m.schema.dropFirst().filter { $0.type != nil }.count
                w.field(7, structList: Array(repeating: 0, count: leaves)) { w, _ in w.field(1, struct: { _ in }) }
            }
        }
        return w.bytes
    }

    /// Encodes a page header.
    public static func encode(_ h: PageHeader) -> [UInt8] {
        var w = ThriftWriter()
        w.structBody { w in
            w.field(1, i32: h.type)
            w.field(2, i32: h.uncompressedSize)
            w.field(3, i32: h.compressedSize)
            if let d = h.dataPage {
                w.field(5, struct: { w in
                    w.field(1, i32: d.numValues)
                    w.field(2, i32: d.encoding)
                    w.field(3, i32: d.definitionLevelEncoding)
                    w.field(4, i32: d.repetitionLevelEncoding)
                    if let s = h.statistics { w.field(5, struct: { write(&$0, statistics: s) }) }
                })
            }
            if let d = h.dictionaryPage {
                w.field(7, struct: { w in
                    w.field(1, i32: d.numValues)
                    w.field(2, i32: d.encoding)
                })
            }
        }
        return w.bytes
    }
}
