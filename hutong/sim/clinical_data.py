"""Clinical tables: diagnoses (ICD-10), lab panels (LOINC, UCUM, WS/T 404-style reference intervals),
imaging procedures (DICOM modality, SNOMED body site) and common medicines (ATC)."""

from __future__ import annotations

# Analyte: loinc, 中文名, UCUM unit, (male lo, hi), (female lo, hi), decimals.
# lo/hi None = one-sided interval. Mean/sd of healthy values derive from the interval.
A = {
    "WBC": ("6690-2", "白细胞计数", "10*9/L", (3.5, 9.5), (3.5, 9.5), 2),
    "RBC": ("789-8", "红细胞计数", "10*12/L", (4.3, 5.8), (3.8, 5.1), 2),
    "HGB": ("718-7", "血红蛋白", "g/L", (130, 175), (115, 150), 0),
    "HCT": ("4544-3", "红细胞压积", "%", (40, 50), (35, 45), 1),
    "MCV": ("787-2", "平均红细胞体积", "fL", (82, 100), (82, 100), 1),
    "MCH": ("785-6", "平均红细胞血红蛋白量", "pg", (27, 34), (27, 34), 1),
    "MCHC": ("786-4", "平均红细胞血红蛋白浓度", "g/L", (316, 354), (316, 354), 0),
    "PLT": ("777-3", "血小板计数", "10*9/L", (125, 350), (125, 350), 0),
    "NEUT%": ("770-8", "中性粒细胞百分比", "%", (40, 75), (40, 75), 1),
    "LYMPH%": ("736-9", "淋巴细胞百分比", "%", (20, 50), (20, 50), 1),
    "NEUT#": ("751-8", "中性粒细胞绝对值", "10*9/L", (1.8, 6.3), (1.8, 6.3), 2),
    "LYMPH#": ("731-0", "淋巴细胞绝对值", "10*9/L", (1.1, 3.2), (1.1, 3.2), 2),
    "ALT": ("1742-6", "丙氨酸氨基转移酶", "U/L", (9, 50), (7, 40), 0),
    "AST": ("1920-8", "天门冬氨酸氨基转移酶", "U/L", (15, 40), (13, 35), 0),
    "TBIL": ("14631-6", "总胆红素", "umol/L", (None, 26), (None, 21), 1),
    "DBIL": ("14629-0", "直接胆红素", "umol/L", (None, 8), (None, 8), 1),
    "TP": ("2885-2", "总蛋白", "g/L", (65, 85), (65, 85), 1),
    "ALB": ("1751-7", "白蛋白", "g/L", (40, 55), (40, 55), 1),
    "ALP": ("6768-6", "碱性磷酸酶", "U/L", (45, 125), (35, 100), 0),
    "GGT": ("2324-2", "γ-谷氨酰转移酶", "U/L", (10, 60), (7, 45), 0),
    "CREA": ("14682-9", "肌酐", "umol/L", (57, 111), (41, 81), 0),
    "UREA": ("22664-7", "尿素", "mmol/L", (3.1, 8.0), (2.6, 7.5), 2),
    "UA": ("14933-6", "尿酸", "umol/L", (208, 428), (155, 357), 0),
    "TC": ("14647-2", "总胆固醇", "mmol/L", (None, 5.2), (None, 5.2), 2),
    "TG": ("14927-8", "甘油三酯", "mmol/L", (None, 1.7), (None, 1.7), 2),
    "HDL": ("14646-4", "高密度脂蛋白胆固醇", "mmol/L", (1.0, None), (1.0, None), 2),
    "LDL": ("22748-8", "低密度脂蛋白胆固醇", "mmol/L", (None, 3.4), (None, 3.4), 2),
    "GLU": ("14771-0", "空腹血糖", "mmol/L", (3.9, 6.1), (3.9, 6.1), 2),
    "HBA1C": ("4548-4", "糖化血红蛋白", "%", (4.0, 6.0), (4.0, 6.0), 1),
    "K": ("2823-3", "钾", "mmol/L", (3.5, 5.3), (3.5, 5.3), 2),
    "NA": ("2951-2", "钠", "mmol/L", (137, 147), (137, 147), 1),
    "CL": ("2075-0", "氯", "mmol/L", (99, 110), (99, 110), 1),
    "U-PH": ("5803-2", "尿酸碱度", "[pH]", (4.5, 8.0), (4.5, 8.0), 1),
    "U-SG": ("5811-5", "尿比重", "1", (1.003, 1.030), (1.003, 1.030), 3),
}
# Qualitative urine dipstick items: loinc, 中文名.
Q = {
    "U-PRO": ("5804-0", "尿蛋白"), "U-GLU": ("5792-7", "尿葡萄糖"), "U-KET": ("5797-6", "尿酮体"),
    "U-BLD": ("5794-3", "尿隐血"), "U-LEU": ("5799-2", "尿白细胞酯酶"), "U-NIT": ("5802-4", "尿亚硝酸盐"),
}
# Typical healthy values where the interval is one-sided: (mean, sd).
ONE_SIDED = {"TBIL": (12, 4), "DBIL": (3.5, 1.3), "TC": (4.6, 0.7), "TG": (1.2, 0.45), "HDL": (1.35, 0.3),
             "LDL": (2.7, 0.6)}

# panel key: (local code, 中文名, LOINC panel or None, LOINC display, items)
PANELS = {
    "CBC": ("XCG", "血常规", "58410-2", "CBC panel - Blood by Automated count",
            ("WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "PLT", "NEUT%", "LYMPH%", "NEUT#", "LYMPH#")),
    "LFT": ("GGN", "肝功能", "24325-3", "Hepatic function panel - Serum or Plasma",
            ("ALT", "AST", "TBIL", "DBIL", "TP", "ALB", "ALP", "GGT")),
    "RFT": ("SGN", "肾功能", "24362-6", "Renal function panel - Serum or Plasma", ("CREA", "UREA", "UA")),
    "LIP": ("XZ", "血脂", "57698-3", "Lipid panel with direct LDL - Serum or Plasma", ("TC", "TG", "HDL", "LDL")),
    "GLU": ("XT", "血糖", None, None, ("GLU", "HBA1C")),
    "ELEC": ("DJZ", "电解质", "24326-1", "Electrolytes 1998 panel - Serum or Plasma", ("K", "NA", "CL")),
    "UA": ("NCG", "尿常规", "24357-6", "Urinalysis macro (dipstick) panel - Urine",
           ("U-PH", "U-SG", "U-PRO", "U-GLU", "U-KET", "U-BLD", "U-LEU", "U-NIT")),
}

# Imaging: key: (modality, 中文名, SNOMED body site, body display)
IMG = {
    "DX-CHEST": ("DX", "胸部X线摄影", "51185008", "Thoracic structure"),
    "CT-CHEST": ("CT", "胸部CT平扫", "51185008", "Thoracic structure"),
    "CT-HEAD": ("CT", "头颅CT平扫", "69536005", "Head structure"),
    "MR-HEAD": ("MR", "头颅MRI平扫", "69536005", "Head structure"),
    "US-ABD": ("US", "腹部彩超", "113345001", "Abdominal structure"),
    "CT-ABD": ("CT", "腹部CT平扫", "113345001", "Abdominal structure"),
    "DX-LSPINE": ("DX", "腰椎正侧位X线摄影", "122496007", "Lumbar spine structure"),
    "DX-KNEE": ("DX", "膝关节正侧位X线摄影", "72696002", "Knee region structure"),
    "DX-HIP": ("DX", "髋关节X线摄影", "24136001", "Hip joint structure"),
    "DX-WRIST": ("DX", "腕关节正侧位X线摄影", "8205005", "Wrist region structure"),
}
IMG_NORMAL = {"DX": "未见明显异常。", "CT": "平扫未见明显异常密度影。", "MR": "未见明显异常信号。", "US": "未见明显异常。"}
IMG_FINDING = {"DX-CHEST": "双肺纹理增多，右下肺见斑片状模糊影，考虑炎症。", "CT-CHEST": "右肺下叶见斑片状高密度影，考虑感染性病变。",
               "CT-HEAD": "左侧基底节区见低密度影，考虑腔隙性脑梗死。", "MR-HEAD": "左侧基底节区急性脑梗死。",
               "US-ABD": "胆囊内见强回声伴声影，考虑胆囊结石。", "CT-ABD": "阑尾增粗，周围脂肪间隙模糊，考虑急性阑尾炎。",
               "DX-LSPINE": "腰椎退行性变。", "DX-KNEE": "膝关节退行性变，关节间隙变窄。", "DX-HIP": "股骨颈骨折。",
               "DX-WRIST": "桡骨远端骨折。"}

# Medicines: key: (ATC or None, 中文名, dosage text)
MED = {
    "amlodipine": ("C08CA01", "苦磺酸氨氯地平片", "5mg 口服 每日一次"),
    "irbesartan": ("C09CA04", "厄贝沙坦片", "150mg 口服 每日一次"),
    "nifedipine": ("C08CA05", "硝苯地平控释片", "30mg 口服 每日一次"),
    "metformin": ("A10BA02", "盐酸二甲双胍片", "0.5g 口服 每日三次"),
    "glimepiride": ("A10BB12", "格列美脲片", "2mg 口服 每日一次"),
    "acarbose": ("A10BF01", "阿卡波糖片", "50mg 口服 每日三次 随餐"),
    "aspirin": ("B01AC06", "阿司匹林肠溶片", "100mg 口服 每日一次"),
    "atorvastatin": ("C10AA05", "阿托伐他汀钙片", "20mg 口服 每晚一次"),
    "rosuvastatin": ("C10AA07", "瑞舒伐他汀钙片", "10mg 口服 每晚一次"),
    "isosorbide": ("C01DA14", "单硝酸异山梨酯缓释片", "40mg 口服 每日一次"),
    "tiotropium": ("R03BB04", "噻托溴铵粉吸入剂", "18μg 吸入 每日一次"),
    "paracetamol": ("N02BE01", "对乙酰氨基酚片", "0.5g 口服 发热时 必要时"),
    "ibuprofen": ("M01AE01", "布洛芬缓释胶囊", "0.3g 口服 每日两次"),
    "celecoxib": ("M01AH01", "塞来昔布胶囊", "0.2g 口服 每日一次"),
    "amoxicillin": ("J01CA04", "阿莫西林胶囊", "0.5g 口服 每日三次"),
    "cefuroxime": ("J01DC02", "头孢呋辛酯片", "0.25g 口服 每日两次"),
    "azithromycin": ("J01FA10", "阿奇霉素片", "0.5g 口服 每日一次"),
    "levofloxacin": ("J01MA12", "左氧氟沙星片", "0.5g 口服 每日一次"),
    "oseltamivir": ("J05AH02", "磷酸奥司他韦胶囊", "75mg 口服 每日两次"),
    "ambroxol": ("R05CB06", "盐酸氨溴索片", "30mg 口服 每日三次"),
    "omeprazole": ("A02BC01", "奥美拉唑肠溶胶囊", "20mg 口服 每日两次"),
    "smectite": ("A07BC05", "蒙脱石散", "3g 口服 每日三次"),
    "levo-eye": ("S01AE05", "左氧氟沙星滴眼液", "1滴 滴眼 每日四次"),
    "mometasone": ("D07AC13", "糠酸莫米松乳膏", "外用 每日一次"),
    "lianhua": (None, "连花清瘟胶囊", "4粒 口服 每日三次"),
    "ceftriaxone": ("J01DD04", "注射用头孢曲松钠", "2g 静脉滴注 每日一次"),
    "insulin": ("A10AB01", "重组人胰岛素注射液", "按血糖调整 皮下注射"),
    "oxytocin": ("H01BB02", "缩宫素注射液", "10U 肌内注射 一次"),
}

# Diagnoses: code: (中文名, dept, labs {panel: p}, imaging (key, p) or None, medicines)
DX = {
    "J06.9": ("急性上呼吸道感染", "03.01", {"CBC": 0.4}, ("DX-CHEST", 0.05), ("paracetamol", "lianhua")),
    "J20.9": ("急性支气管炎", "03.01", {"CBC": 0.6}, ("DX-CHEST", 0.3), ("amoxicillin", "ambroxol")),
    "J18.9": ("肺炎", "03.01", {"CBC": 0.95}, ("DX-CHEST", 0.8), ("cefuroxime", "azithromycin")),
    "J11.1": ("流行性感冒", "03.01", {"CBC": 0.6}, None, ("oseltamivir", "paracetamol")),
    "J02.9": ("急性咽炎", "11", {"CBC": 0.3}, None, ("lianhua",)),
    "J03.9": ("急性扁桃体炎", "11", {"CBC": 0.7}, None, ("amoxicillin",)),
    "A09": ("胃肠炎和结肠炎", "03.02", {"CBC": 0.5}, None, ("smectite",)),
    "K29.7": ("胃炎", "03.02", {}, ("US-ABD", 0.1), ("omeprazole",)),
    "K21.9": ("胃食管反流病", "03.02", {}, None, ("omeprazole",)),
    "M54.5": ("腰痛", "04.03", {}, ("DX-LSPINE", 0.3), ("ibuprofen",)),
    "M17.9": ("膝关节病", "04.03", {}, ("DX-KNEE", 0.4), ("celecoxib",)),
    "R51": ("头痛", "03.03", {}, ("CT-HEAD", 0.15), ("ibuprofen",)),
    "N39.0": ("尿路感染", "04.04", {"UA": 0.95, "CBC": 0.4}, None, ("levofloxacin",)),
    "H10.9": ("结膜炎", "10", {}, None, ("levo-eye",)),
    "K02.9": ("龋病", "12", {}, None, ()),
    "L30.9": ("皮炎", "13", {}, None, ("mometasone",)),
    "B08.4": ("手足口病", "07", {"CBC": 0.5}, None, ("paracetamol",)),
    "I10": ("原发性高血压", "03.04", {"RFT": 0.25, "LIP": 0.2, "ELEC": 0.1}, None, ("amlodipine", "irbesartan", "nifedipine")),
    "E11.9": ("2型糖尿病", "03.07", {"GLU": 0.6, "RFT": 0.2, "LIP": 0.2, "UA": 0.15}, None, ("metformin", "glimepiride", "acarbose")),
    "I25.1": ("冠状动脉粥样硬化性心脏病", "03.04", {"LIP": 0.3}, None, ("aspirin", "atorvastatin", "isosorbide")),
    "E78.5": ("高脂血症", "03.04", {"LIP": 0.6, "LFT": 0.3}, None, ("atorvastatin", "rosuvastatin")),
    "J44.9": ("慢性阻塞性肺疾病", "03.01", {"CBC": 0.3}, ("DX-CHEST", 0.2), ("tiotropium",)),
    "J44.1": ("慢性阻塞性肺疾病伴急性加重", "03.01", {}, ("CT-CHEST", 0.6), ("ceftriaxone", "tiotropium")),
    "I63.9": ("脑梗死", "03.03", {}, ("CT-HEAD", 0.9), ("aspirin", "atorvastatin")),
    "I20.0": ("不稳定型心绞痛", "03.04", {}, None, ("aspirin", "atorvastatin", "isosorbide")),
    "I21.9": ("急性心肌梗死", "03.04", {}, None, ("aspirin", "atorvastatin")),
    "K80.2": ("胆囊结石", "04.01", {}, ("US-ABD", 0.9), ("ceftriaxone",)),
    "K35.8": ("急性阑尾炎", "04.01", {}, ("CT-ABD", 0.5), ("ceftriaxone",)),
    "S72.0": ("股骨颈骨折", "04.03", {}, ("DX-HIP", 0.95), ("celecoxib",)),
    "O80": ("单胎顺产", "05", {}, None, ("oxytocin",)),
    "C34.9": ("肺恶性肿瘤", "19", {}, ("CT-CHEST", 0.9), ()),
    "C16.9": ("胃恶性肿瘤", "19", {}, ("CT-ABD", 0.8), ("omeprazole",)),
    "N20.0": ("肾结石", "04.04", {"UA": 0.8}, ("US-ABD", 0.8), ("ibuprofen",)),
    "S06.0": ("脑震荡", "20", {}, ("CT-HEAD", 0.8), ()),
    "S52.5": ("桡骨远端骨折", "04.03", {}, ("DX-WRIST", 0.95), ("ibuprofen",)),
    "R10.4": ("腹痛", "20", {"CBC": 0.6}, ("US-ABD", 0.4), ("omeprazole",)),
    "T78.4": ("过敏反应", "20", {}, None, ()),
    "Z38.0": ("单胎活产婴儿，医院内出生", "07", {}, None, ()),
}
RESPIRATORY = frozenset(("J06.9", "J20.9", "J18.9", "J11.1", "J02.9", "J03.9", "J44.1"))
INFECTION = RESPIRATORY | {"A09", "N39.0", "B08.4", "K35.8"}

# Acute outpatient diagnoses: code: (winter weight Nov-Mar, summer weight Jun-Aug, other months, min age, max age)
OUTPATIENT = {
    "J06.9": (30, 8, 15, 0, 120), "J20.9": (10, 3, 5, 0, 120), "J18.9": (5, 1, 2, 0, 120), "J11.1": (8, 0.2, 1, 0, 120),
    "J02.9": (6, 3, 4, 3, 120), "J03.9": (5, 2, 3, 3, 60), "A09": (2, 10, 4, 0, 120), "K29.7": (4, 5, 5, 15, 120),
    "K21.9": (2, 2, 2, 25, 120), "M54.5": (3, 3, 3, 25, 120), "M17.9": (3, 2, 3, 45, 120), "R51": (2, 2, 2, 10, 120),
    "N39.0": (2, 3, 2, 15, 120), "H10.9": (1, 3, 2, 0, 120), "K02.9": (2, 2, 2, 3, 120), "L30.9": (1, 4, 2, 0, 120),
    "B08.4": (0.2, 6, 1, 0, 6),
}
# Inpatient: code: (child <15, adult 15-64, elderly 65+)
INPATIENT = {
    "J18.9": (30, 5, 15), "A09": (10, 1, 2), "J20.9": (10, 1, 2), "I63.9": (0, 6, 20), "I20.0": (0, 5, 12),
    "I21.9": (0, 2, 3), "J44.1": (0, 1, 8), "K80.2": (0, 6, 4), "K35.8": (5, 5, 1), "S72.0": (0, 0.5, 4),
    "C34.9": (0, 1, 3), "C16.9": (0, 1, 2), "E11.9": (0, 2, 4), "N20.0": (0, 3, 2),
}
EMERGENCY = {
    "S06.0": (5, 4, 3), "S52.5": (5, 4, 3), "R10.4": (5, 8, 6), "I20.0": (0, 2, 8), "J18.9": (8, 2, 6),
    "A09": (8, 3, 2), "J06.9": (12, 2, 1), "T78.4": (2, 2, 1),
}
# Month weights (Jan..Dec): winter respiratory peak, Spring-Festival dip in February.
MONTHS = (1.25, 1.0, 1.15, 1.0, 0.95, 0.9, 0.95, 0.95, 1.0, 0.9, 1.05, 1.25)
