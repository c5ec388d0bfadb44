import SluiceCore

/// Reads one column chunk page by page: decompresses each page, decodes its repetition and
/// definition levels and its values (into a dense column of the mapped type), and hands out
/// entries in order. Flat columns are read a run at a time; nested ones entry by entry.
final class ParquetColumnReader {
    let bytes: [UInt8]
    let leaf: ParquetSchema.Leaf
    let codec: Parquet.Codec
    let name: String
    let fileName: String?
    var values: ParquetValueDecoder
    /// Values the chunk declares; pages past them are not read.
    let totalValues: Int64
    var valuesSeen: Int64 = 0
    var pos = 0

    var dictionary: Column?
    /// The current page: its levels (empty when the max level is 0) and dense values.
    var defs: [Int32] = []
    var reps: [Int32] = []
    var page: Column
    var entryCount = 0
    var entry = 0
    var valueIndex = 0
    /// Where ``readFlat(_:into:)`` wants a whole page decoded, with room for `directRoom`
    /// rows; `directRows` says how many went there.
    var direct: UnsafeMutablePointer<Column>?
    var directRoom = 0
    var directRows = 0
    /// Decompressed page bytes, reused from page to page.
    var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    init(bytes: [UInt8], meta: Parquet.ColumnMetaData, leaf: ParquetSchema.Leaf, fileName: String?) {
        self.bytes = bytes
        self.leaf = leaf
        self.codec = meta.codec
        self.totalValues = meta.numValues
        self.name = leaf.path.joined(separator: ".")
        self.fileName = fileName
        self.values = ParquetValueDecoder(mapping: leaf.mapping)
        self.page = Column(type: leaf.mapping.type)
    }

    deinit { scratch.deallocate() }

    func fail(_ m: String) -> SluiceError {
        SluiceError(.malformedFile, "column '\(name)': \(m)", at: SourceLocation(file: fileName))
    }

    /// Largest page Sluice will inflate: a bound from the codec's best possible ratio, and 1 GiB.
    func maxUncompressed(_ compressed: Int) -> Int {
        let ratio: Int
        switch codec {
        case .uncompressed: ratio = 1
        case .snappy: ratio = 32
        case .lz4, .lz4Raw: ratio = 256
        case .gzip: ratio = 1032
        default: ratio = 1 << 20
        }
        return min(1 << 30, compressed.multipliedReportingOverflow(by: ratio).partialValue + 64)
    }

    /// A page's bytes: `src` itself when stored uncompressed, else decompressed into the
    /// reader's scratch buffer, which is reused (valid until the next call).
    func pageBytes(_ src: UnsafeRawBufferPointer, size: Int, compressed: Bool = true) throws(SluiceError) -> UnsafeRawBufferPointer {
        if !compressed || codec == .uncompressed { return src }
        guard size >= 0, size <= maxUncompressed(src.count) else { throw fail("a page claims \(size) uncompressed bytes from \(src.count)") }
        if scratch.count < size {
            scratch.deallocate()
            scratch = .allocate(byteCount: max(size, min(scratch.count * 2, maxUncompressed(src.count))), alignment: 16)
        }
        let d = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<size])
        do throws(SluiceError) {
            switch codec {
            case .snappy: try Snappy.decompress(src, into: d)
            case .gzip: try Zlib.inflate(src, into: d, framing: .gzipOrZlib)
            case .zstd: try Zstd.decompress(src, into: d)
            case .lz4Raw: guard try LZ4.decompressBlock(src, into: d) == size else { throw SluiceError(.malformedFile, "lz4 block size mismatch") }
            case .lz4: try LZ4.decompressHadoop(src, into: d)
            case .brotli: try Brotli.decompress(src, into: d)
            case .lzo: throw SluiceError(.unsupported, "LZO compression is not supported")
            case .uncompressed: break
            }
        } catch {
            throw SluiceError(error.code, "column '\(name)': \(error.message)", at: SourceLocation(file: fileName))
        }
        return UnsafeRawBufferPointer(d)
    }

    /// Levels of one page: v1 pages prefix RLE levels with their byte length.
    func levels(_ b: UnsafeRawBufferPointer, max: Int, count: Int, encoding: Int32, v1: Bool, into out: inout [Int32]) throws(SluiceError) -> Int {
        out.removeAll(keepingCapacity: true)
        if max == 0 { return 0 }
        let width = ParquetEncoding.bitWidth(max)
        var used = 0
        if v1 {
            guard encoding == Parquet.Encoding.rle.rawValue else { throw SluiceError(.unsupported, "column '\(name)': level encoding \(encoding) is not supported", at: SourceLocation(file: fileName)) }
            guard b.count >= 4 else { throw fail("truncated levels") }
            let len = Int(b.loadUnaligned(as: UInt32.self).littleEndian)
            guard len <= b.count - 4 else { throw fail("levels run past the page") }
            try ParquetEncoding.decodeHybrid(UnsafeRawBufferPointer(rebasing: b[4..<(4 + len)]), bitWidth: width, count: count, into: &out)
            used = 4 + len
        } else {
            try ParquetEncoding.decodeHybrid(b, bitWidth: width, count: count, into: &out)
            used = b.count
        }
        guard out.count == count else { throw fail("page has \(out.count) levels for \(count) values") }
        for l in out where l < 0 || Int(l) > max { throw fail("level \(l) is above the maximum \(max)") }
        return used
    }

    /// Loads the next data page (reading a dictionary page on the way). False at the end.
    func nextPage() throws(SluiceError) -> Bool {
        while valuesSeen < totalValues && pos < bytes.count {
            let (header, headerLength) = try bytes.withBytes { (b) throws(SluiceError) in
                try Parquet.pageHeader(UnsafeRawBufferPointer(rebasing: b[pos...]))
            }
            pos += headerLength
            let size = Int(header.compressedSize)
            guard size >= 0, size <= bytes.count - pos else { throw fail("a page of \(size) bytes runs past the column chunk") }
            let body = pos..<(pos + size)
            pos += size
            switch Parquet.PageType(rawValue: header.type) {
            case .dictionaryPage?:
                guard let d = header.dictionaryPage else { throw fail("dictionary page without its header") }
                guard d.numValues >= 0 else { throw fail("dictionary of \(d.numValues) values") }
                dictionary = try bytes.withBytes { (b) throws(SluiceError) in
                    let raw = try pageBytes(UnsafeRawBufferPointer(rebasing: b[body]), size: Int(header.uncompressedSize))
                    guard Int(d.numValues) <= raw.count * 8 + 1 else { throw fail("dictionary claims \(d.numValues) values in \(raw.count) bytes") }
                    var dict = Column(type: leaf.mapping.type, capacity: Int(d.numValues))
                    try values.decode(Parquet.Encoding.plain.rawValue, raw, count: Int(d.numValues), dictionary: nil, into: &dict)
                    return dict
                }
            case .dataPage?:
                guard let d = header.dataPage else { throw fail("data page without its header") }
                let n = Int(d.numValues)
                guard n >= 0, Int64(n) <= totalValues - valuesSeen else { throw fail("a page holds \(d.numValues) values, more than the chunk has left") }
                try bytes.withBytes { (chunk) throws(SluiceError) in
                    let b = try pageBytes(UnsafeRawBufferPointer(rebasing: chunk[body]), size: Int(header.uncompressedSize))
                    var at = try levels(b, max: leaf.maxRep, count: n, encoding: d.repetitionLevelEncoding, v1: true, into: &reps)
                    at += try levels(UnsafeRawBufferPointer(rebasing: b[at...]), max: leaf.maxDef, count: n, encoding: d.definitionLevelEncoding, v1: true, into: &defs)
                    try loadValues(UnsafeRawBufferPointer(rebasing: b[at...]), entries: n, encoding: d.encoding)
                }
                return true
            case .dataPageV2?:
                guard let d = header.dataPageV2 else { throw fail("v2 data page without its header") }
                let n = Int(d.numValues)
                let rl = Int(d.repetitionLevelsByteLength), dl = Int(d.definitionLevelsByteLength)
                guard n >= 0, Int64(n) <= totalValues - valuesSeen else { throw fail("a page holds \(d.numValues) values, more than the chunk has left") }
                guard rl >= 0, dl >= 0, rl + dl <= size, Int(header.uncompressedSize) - rl - dl >= 0 else { throw fail("v2 page level lengths do not fit the page") }
                try bytes.withBytes { (b) throws(SluiceError) in
                    let page = UnsafeRawBufferPointer(rebasing: b[body])
                    _ = try levels(UnsafeRawBufferPointer(rebasing: page[0..<rl]), max: leaf.maxRep, count: n, encoding: 3, v1: false, into: &reps)
                    _ = try levels(UnsafeRawBufferPointer(rebasing: page[rl..<(rl + dl)]), max: leaf.maxDef, count: n, encoding: 3, v1: false, into: &defs)
                    let values = try pageBytes(UnsafeRawBufferPointer(rebasing: page[(rl + dl)...]), size: Int(header.uncompressedSize) - rl - dl,
                                               compressed: d.isCompressed)
                    try loadValues(values, entries: n, encoding: d.encoding)
                }
                return true
            default:
                continue  // index pages and unknown page types are skipped
            }
        }
        return false
    }

    func loadValues(_ b: UnsafeRawBufferPointer, entries n: Int, encoding: Int32) throws(SluiceError) {
        var present = n
        if leaf.maxDef > 0 {
            let m = Int32(leaf.maxDef)
            present = 0
            for d in defs where d == m { present += 1 }
        }
        page.removeAll()
        entryCount = n
        entry = 0
        valueIndex = 0
        valuesSeen += Int64(n)
        do throws(SluiceError) {
            if let dest = direct, leaf.maxRep == 0, present == n, n <= directRoom {
                // The whole page goes to the caller's column with no NULL: decode it there.
                let before = dest.pointee.count
                try values.decode(encoding, b, count: n, dictionary: dictionary, into: &dest.pointee)
                guard dest.pointee.count == before + n else { throw fail("page decoded \(dest.pointee.count - before) values, expected \(n)") }
                entry = n
                directRows = n
                return
            }
            try values.decode(encoding, b, count: present, dictionary: dictionary, into: &page)
        } catch {
            throw SluiceError(error.code, "column '\(name)': \(error.message)", at: SourceLocation(file: fileName))
        }
        guard page.count == present else { throw fail("page decoded \(page.count) values, expected \(present)") }
    }

    // MARK: Flat columns

    /// Appends the next `n` rows of a non-repeated column to `col` (NULL where undefined).
    func readFlat(_ n: Int, into col: inout Column) throws(SluiceError) {
        var need = n
        let maxDef = Int32(leaf.maxDef)
        while need > 0 {
            if entry == entryCount {
                directRows = 0
                directRoom = need
                let more = try withUnsafeMutablePointer(to: &col) { (p) throws(SluiceError) -> Bool in
                    direct = p
                    defer { direct = nil }
                    return try nextPage()
                }
                guard more else { throw fail("the column ends \(need) rows early") }
                need -= directRows
                continue
            }
            let k = min(need, entryCount - entry)
            if maxDef == 0 {
                col.append(from: page, range: valueIndex..<(valueIndex + k))
                valueIndex += k
            } else {
                var e = entry
                let end = entry + k
                while e < end {
                    if defs[e] == maxDef {
                        var r = e + 1
                        while r < end && defs[r] == maxDef { r += 1 }
                        col.append(from: page, range: valueIndex..<(valueIndex + r - e))
                        valueIndex += r - e
                        e = r
                    } else {
                        col.appendNull()
                        e += 1
                    }
                }
            }
            entry += k
            need -= k
        }
    }

    // MARK: Nested columns

    /// The current entry's levels, loading pages as needed; nil at the end of the chunk.
    func peek() throws(SluiceError) -> (rep: Int32, def: Int32)? {
        while entry == entryCount {
            guard try nextPage() else { return nil }
        }
        return (leaf.maxRep > 0 ? reps[entry] : 0, leaf.maxDef > 0 ? defs[entry] : 0)
    }

    /// Moves past the current entry.
    func advance() {
        if leaf.maxDef == 0 || defs[entry] == Int32(leaf.maxDef) { valueIndex += 1 }
        entry += 1
    }

    /// Writes the current entry's value as JSON (null when undefined) and moves past it.
    func advance(writing out: inout [UInt8]) {
        if leaf.maxDef == 0 || defs[entry] == Int32(leaf.maxDef) {
            ValueText.json(page, valueIndex, into: &out)
            valueIndex += 1
        } else {
            out.append(contentsOf: "null".utf8)
        }
        entry += 1
    }
}
