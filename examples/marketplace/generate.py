#!/usr/bin/env python3
"""Marketplace order files like seed 002's: JSON arrays of orders, each with its items, seller
and shipment, using the seed's key names (txt_detl_idt_pedi_pgto, idt_venr).

  generate.py --files 20 --out landing/input                 # into a folder
  generate.py --files 20 --bucket itau-shop --endpoint URL   # into input/ of an S3 bucket (boto3)

Deterministic for a given --seed; prints the expected row counts of the four tables as JSON
(orders, products = distinct order/item pairs, sellers, shipments).
"""
import argparse, datetime, json, os, random

CITIES = [("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG"), ("Curitiba", "PR"), ("Recife", "PE"), ("Porto Alegre", "RS")]
CATEGORIES = {"eletrônicos": ["Fone Bluetooth", "Carregador USB-C", "Smartwatch", "Caixa de Som"],
              "casa": ["Jogo de Panelas", "Luminária", "Toalha de Banho", "Cafeteira"],
              "moda": ["Camiseta Algodão", "Tênis Corrida", "Mochila", "Boné"],
              "livros": ["Romance", "Guia de Viagem", "Livro de Receitas", "HQ"]}
CARRIERS = ["Correios", "Loggi", "Jadlog", "Total Express"]
STATES = ["aprovado", "faturado", "enviado", "entregue", "cancelado"]


def orders(rng, n, file_no, sellers):
    base = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    out = []
    for i in range(n):
        oid = "PED-%05d-%06d" % (file_no, i)
        seller = rng.choice(sellers)
        items = []
        for j in range(rng.randint(1, 5)):
            cat = rng.choice(list(CATEGORIES))
            items.append({"idt_prod": "SKU-%d-%04d" % (j, rng.randint(0, 9999)), "nom_prod": rng.choice(CATEGORIES[cat]), "nom_cate": cat,
                          "qtd_item": rng.randint(1, 4), "vlr_unit": round(rng.uniform(5, 800), 2)})
        # Distinct products per order (the products key is order + product).
        seen, uniq = set(), []
        for it in items:
            if it["idt_prod"] not in seen:
                seen.add(it["idt_prod"]); uniq.append(it)
        when = base + datetime.timedelta(seconds=rng.randint(0, 20 * 86400))
        out.append({
            "txt_detl_idt_pedi_pgto": oid,
            "dat_hor_tran": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stat_pedi": rng.choice(STATES),
            "vlr_totl_pedi": round(sum(it["vlr_unit"] * it["qtd_item"] for it in uniq), 2),
            "cliente": {"idt_clie": "CLI-%06d" % rng.randint(0, 200000)},
            "vendedor": seller,
            "itens": uniq,
            "entrega": {"idt_rastr": "BR%09dBR" % rng.randint(0, 10**9), "nom_trsp": rng.choice(CARRIERS),
                        "dat_prev_entr": (when + datetime.timedelta(days=rng.randint(2, 15))).strftime("%Y-%m-%d"),
                        "stat_entr": rng.choice(["aguardando", "em_transito", "entregue"])},
        })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--min-orders", type=int, default=10)
    ap.add_argument("--max-orders", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="number of the first file (to add more later)")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", help="folder to write into")
    ap.add_argument("--bucket")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_S3"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    sellers = [{"idt_venr": "VND-%04d" % k, "nom_venr": "Loja %d" % k, "nom_cida": c, "sig_uf": uf}
               for k, (c, uf) in ((k, rng.choice(CITIES)) for k in range(300))]
    s3 = None
    if a.bucket:
        import boto3
        s3 = boto3.client("s3", endpoint_url=a.endpoint)
        # A fresh server has no bucket yet: the walkthrough makes it.
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if a.bucket not in existing:
            s3.create_bucket(Bucket=a.bucket)
    elif a.out:
        os.makedirs(a.out, exist_ok=True)
    counts = {"orders": 0, "products": 0, "sellers": set(), "shipments": 0}
    for f in range(a.first, a.first + a.files):
        batch = orders(rng, rng.randint(a.min_orders, a.max_orders), f, sellers)
        counts["orders"] += len(batch)
        counts["shipments"] += len(batch)
        counts["products"] += sum(len(o["itens"]) for o in batch)
        counts["sellers"].update(o["vendedor"]["idt_venr"] for o in batch)
        body = json.dumps(batch, ensure_ascii=False).encode()
        name = "orders-%05d.json" % f
        if s3:
            s3.put_object(Bucket=a.bucket, Key="input/" + name, Body=body)
        else:
            with open(os.path.join(a.out, name), "wb") as fh:
                fh.write(body)
    counts["sellers"] = len(counts["sellers"])
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
