"""Personal data is masked in anything shown, and only consenting customers are contactable."""

import ibis
import pandas as pd

from crm_helpers import privacy


def test_mask_hides_personal_fields_but_keeps_their_shape():
    df = pd.DataFrame({"customer_id": [1], "first_name": ["Anna"], "email": ["anna.smith@mail.com"],
                       "phone": ["07700900123"], "postcode": ["AB12CD"], "revenue": [12.5]})
    masked = privacy.mask(df).iloc[0]
    assert masked.first_name == "A***" and masked.email == "a*********@mail.com"
    assert masked.phone == "0770*******" and masked.postcode == "AB****"
    assert masked.customer_id == 1 and masked.revenue == 12.5
    assert "Anna" not in privacy.mask(df).to_string()


def test_drop_personal_keeps_only_analysis_columns():
    df = pd.DataFrame({"customer_id": [1], "email": ["a@b.c"], "street": ["1 High St"], "segment": ["x"]})
    assert list(privacy.drop_personal(df).columns) == ["customer_id", "segment"]


def test_contactable_requires_consent_and_honours_do_not_contact():
    customers = ibis.memtable(pd.DataFrame({
        "customer_id": [1, 2, 3, 4, 5],
        "email_opt_in": [True, True, False, None, True],
        "sms_opt_in": [True, False, True, True, None],
        "do_not_contact": [False, True, False, False, None],
    }))
    run = ibis.duckdb.connect().execute
    assert sorted(run(privacy.contactable(customers, "email")).customer_id) == [1]
    assert sorted(run(privacy.contactable(customers, "sms")).customer_id) == [1, 3, 4]


def test_golden_records_with_the_sample_mark_no_opted_out_person_contactable(small_warehouse, small_truth_dir):
    from crm_helpers import truth, warehouse

    con = warehouse.connect(small_warehouse, read_only=True)
    reachable = privacy.contactable(con.table("dim_customer"), "email").select("customer_id")
    owners = con.table("identity_map").to_pandas().merge(
        truth.read_truth("identity", small_truth_dir), on=["source", "source_record_id"])
    people = truth.read_truth("people", small_truth_dir).set_index("person_id")
    persons = owners[owners.customer_id.isin(reachable.to_pandas().customer_id)].person_id.unique()
    con.disconnect()
    assert len(persons) > 0
    assert people.loc[persons, "email_opt_in"].astype(bool).all()
    assert not people.loc[persons, "do_not_contact"].astype(bool).any()
